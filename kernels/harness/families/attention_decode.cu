// attention_decode.cu: the kernel harness's decode-attention family (kernels/cuda/attention_decode/).
//
// check: every version against llm::cpu::paged_decode_attention (num_splits = 1: plain attention
//        over the block table) at real shapes (Llama-8B heads; head_dim 64 with 9/3 heads; the
//        tiny-target model's head_dim 32 with 8/2 heads),
//        awkward ones (one key, lengths off the block size, very different lengths in a batch,
//        block sizes 1, 3 and 32, MHA, groups of 8 and 12) and long contexts (8k, and 32k once;
//        not with --quick). The KV pool's blocks are handed out in a shuffled order, so a kernel
//        that assumes contiguous blocks fails; the block table's spare column points at a real
//        block of random data, so a kernel reading past seq_len fails. Version 2 is also run with
//        num_splits 1 and 3 and with more splits than a short sequence has keys, its workspace
//        poisoned (NaN) so that a merge reading an unwritten partial fails.
//        Version 3 reads the same K/V quantized per (token, KV head) row to int8 (scale amax/127,
//        round to nearest) and to FP8 E4M3 (kernels/cpu/quantize.h's quantize_fp8_row), against
//        llm::cpu::paged_decode_attention_quant on the same codes and scales, with 02's splits.
// bench: batch 1, 4, 16 at 4k and 32k context, Llama-8B heads (32 query heads, 8 kv heads,
//        head_dim 128, block 16); GB/s = (K + V bytes of every valid key + q + out) / time, the
//        bytes the operation must move at least (version 1 reads K/V once per query head, from
//        L2 at best; the figure still counts them once, so the versions compare). Version 3's
//        rows count its own bytes (1-byte codes plus an fp32 scale per token, KV head and tensor):
//        compare their times with 02's, not only their GB/s. Timed as quant_gemv's rows are
//        (time_batched: the median of 20 batches of 32 back-to-back launches): launch i reads
//        copy i % copies of the K/V cache (version 3: codes and K and V scales) from one
//        device-random pool, each copy a whole cache for the one block table, enough copies that
//        each launch finds its K/V evicted from L2 (rotation_pool_copies: 8 copies of 16 MiB at
//        batch 1, 4k with a 50 MiB L2; one where a cache alone is two L2s or more); q, the block
//        table, the lengths, the workspace and out are shared, as a decode step finds them.
//        Batch 1 at 4k takes about 5 us on an H200: an event pair around a single cold launch
//        would add microseconds to that.
//
//   build/kernels/kernel_harness check attention_decode [--version N] [--quick]
//   build/kernels/kernel_harness bench attention_decode [--version N] [--quick]
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/half.h"
#include "kernels/cpu/quantize.h"
#include "kernels/cuda/attention_decode/attention_decode.cuh"
#include "kernels/cuda/random_fill.cuh"
#include "kernels/harness/families/families.h"

namespace llm::harness {

namespace {

/// One check shape. `splits` lists the num_splits values version 2 runs with (0: automatic).
struct DecodeCase {
  std::string name;
  int n_heads, n_kv_heads, head_dim, block_size;
  std::vector<int> seq_lens;
  std::vector<int> splits = {0};
  float q_scale = 1.0f;  // > 1 makes the softmax peaked (tests the running-max rescale)
};

/// A paged KV cache filled for a batch: blocks handed out in shuffled order, one spare column
/// in the block table pointing at unrelated blocks.
struct PagedCache {
  int num_blocks = 0, max_blocks_per_seq = 0;
  std::vector<int> block_table;
};

PagedCache make_block_table(const std::vector<int>& seq_lens, int block_size, std::uint64_t seed) {
  PagedCache c;
  int needed = 0;
  for (int len : seq_lens) {
    const int blocks = (len + block_size - 1) / block_size;
    needed += blocks;
    c.max_blocks_per_seq = std::max(c.max_blocks_per_seq, blocks + 1);
  }
  c.num_blocks = needed + 3;  // a few blocks nobody owns
  std::vector<int> order(c.num_blocks);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  c.block_table.assign(seq_lens.size() * c.max_blocks_per_seq, 0);
  int next = 0;
  for (std::size_t b = 0; b < seq_lens.size(); ++b) {
    for (int j = 0; j < c.max_blocks_per_seq; ++j) {
      const bool owned = j * block_size < seq_lens[b];
      c.block_table[b * c.max_blocks_per_seq + j] =
          owned ? order[next++] : static_cast<int>(rng() % static_cast<std::uint64_t>(c.num_blocks));
    }
  }
  return c;
}

std::string join(const std::vector<int>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

bool wants(const FamilyOptions& o, int version) {
  return o.version == 0 || o.version == version;
}

/// A K or V pool [slots * n_kv_heads rows of head_dim] as version 3 stores it: 1-byte codes and
/// one fp32 scale per row. int8: scale = amax / 127 (1 for a zero row), code = round(x / scale);
/// FP8 E4M3: kernels/cpu's quantize_fp8_row. The twin decodes the very codes and scales.
struct CodedPool {
  std::vector<std::uint8_t> codes;
  std::vector<float> scales;
};

CodedPool quantize_pool(const std::vector<float>& x, int head_dim, cuda::KvCode code) {
  CodedPool c;
  const std::size_t rows = x.size() / static_cast<std::size_t>(head_dim);
  c.codes.resize(x.size());
  c.scales.resize(rows);
  for (std::size_t r = 0; r < rows; ++r) {
    const float* row = x.data() + r * head_dim;
    std::uint8_t* dst = c.codes.data() + r * head_dim;
    if (code == cuda::KvCode::fp8_e4m3) {
      c.scales[r] = cpu::quantize_fp8_row(row, dst, static_cast<std::size_t>(head_dim), cpu::Fp8Format::E4M3);
      continue;
    }
    float amax = 0.0f;
    for (int j = 0; j < head_dim; ++j) amax = std::max(amax, std::fabs(row[j]));
    const float scale = amax > 0.0f ? amax / 127.0f : 1.0f;
    for (int j = 0; j < head_dim; ++j) {
      const long q = std::lround(row[j] / scale);
      dst[j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(std::clamp(q, -127L, 127L)));
    }
    c.scales[r] = scale;
  }
  return c;
}

template <class T>
DeviceBuffer<T> upload_plain(const std::vector<T>& v) {
  DeviceBuffer<T> d(v.size());
  if (!v.empty()) CUDA_CHECK(cudaMemcpy(d.get(), v.data(), d.bytes(), cudaMemcpyHostToDevice));
  return d;
}

std::vector<DecodeCase> check_cases(bool quick) {
  std::vector<DecodeCase> cases = {
      // Real shapes.
      {"llama8b", 32, 8, 128, 16, {1, 17, 300, 2048}, {0, 1, 3}},
      {"d64_9/3", 9, 3, 64, 8, {5, 64, 777}, {0, 1, 3}},
      {"tiny-target", 8, 2, 32, 8, {1, 17, 300}, {0, 1, 3}},
      // Awkward shapes.
      {"one_key", 32, 8, 128, 16, {1}},
      {"uneven_lens", 8, 2, 128, 16, {4000, 3, 33}, {0, 1, 3}},
      {"block1", 4, 2, 64, 1, {1, 50}, {0, 3}},
      {"block3", 4, 1, 64, 3, {10, 101}, {0, 3}},
      {"block32", 16, 4, 128, 32, {31, 129}, {0, 3}},
      {"mha", 6, 6, 64, 16, {100, 7}, {0, 3}},
      {"d32_mha", 4, 4, 32, 16, {100, 7}, {0, 3}},
      {"group8", 64, 8, 128, 16, {513, 70}, {0, 3}},
      {"group5", 10, 2, 128, 16, {90}, {0, 3}},
      {"group12", 12, 1, 64, 16, {200, 45}, {0, 3}},
      {"peaked", 32, 8, 128, 16, {1000, 257}, {0, 3}, 8.0f},
      // More splits than the short sequence has keys: most of its splits are empty.
      {"splits>keys", 8, 2, 128, 16, {5, 300}, {16, 64}},
      {"splits>len", 4, 4, 64, 16, {3}, {8}},
  };
  if (!quick) {
    cases.push_back({"long8k", 32, 8, 128, 16, {8192, 5000}, {0, 1, 7}});
    cases.push_back({"long32k", 32, 8, 128, 16, {32768}});
    // head_dim 32 (8 keys per warp load in 02) with every query-head tile: 2, 8, and long.
    cases.push_back({"d32_group2_block3", 4, 2, 32, 3, {10, 101}, {0, 3}});
    cases.push_back({"d32_group8", 16, 2, 32, 16, {513, 70}, {0, 3}});
    cases.push_back({"d32_peaked", 8, 2, 32, 8, {256, 255, 1}, {0, 1, 3}, 8.0f});
    cases.push_back({"d32_long4k", 8, 2, 32, 16, {4096, 1000}, {0, 7}});
  }
  return cases;
}

/// The args every call shares, from the buffers of one case.
cuda::DecodeAttentionArgs make_args(const DeviceBuffer<__half>& q, DeviceBuffer<__half>& out,
                                    const DeviceBuffer<__half>& k, const DeviceBuffer<__half>& v,
                                    const DeviceBuffer<int>& table, const DeviceBuffer<int>& lens, int batch,
                                    int n_heads, int n_kv_heads, int head_dim, int block_size, const PagedCache& c,
                                    int max_seq_len) {
  cuda::DecodeAttentionArgs a;
  a.q = q.get();
  a.out = out.get();
  a.k_cache = k.get();
  a.v_cache = v.get();
  a.block_table = table.get();
  a.seq_lens = lens.get();
  a.batch = batch;
  a.n_heads = n_heads;
  a.n_kv_heads = n_kv_heads;
  a.head_dim = head_dim;
  a.block_size = block_size;
  a.num_blocks = c.num_blocks;
  a.max_blocks_per_seq = c.max_blocks_per_seq;
  a.max_seq_len = max_seq_len;
  return a;
}

/// validate() must name the field of an impossible argument.
bool check_validation() {
  cuda::DecodeAttentionArgs a;
  a.q = a.out = reinterpret_cast<__half*>(256);
  a.k_cache = a.v_cache = a.q;
  a.block_table = a.seq_lens = reinterpret_cast<const int*>(256);
  a.num_blocks = a.max_blocks_per_seq = 1;
  a.max_seq_len = 1;
  bool ok = true;
  // `field` is the text the message must contain.
  auto expect_throw = [&](cuda::DecodeAttentionArgs bad, const char* field) {
    try {
      cuda::validate(bad);
      std::printf("FAIL attention_decode validate: accepted a bad %s\n", field);
      ok = false;
    } catch (const std::invalid_argument& e) {
      if (std::string(e.what()).find(field) == std::string::npos) {
        std::printf("FAIL attention_decode validate: message \"%s\" does not name %s\n", e.what(), field);
        ok = false;
      }
    }
  };
  cuda::validate(a);  // the base args are fine
  auto bad = a;
  bad.head_dim = 32;  // the tiny-target model's head_dim: accepted
  try {
    cuda::validate(bad);
  } catch (const std::invalid_argument& e) {
    std::printf("FAIL attention_decode validate: refused head_dim 32: %s\n", e.what());
    ok = false;
  }
  bad.head_dim = 96;
  expect_throw(bad, "head_dim");
  bad.head_dim = 16;
  expect_throw(bad, "head_dim");
  bad = a;
  bad.n_heads = 6, bad.n_kv_heads = 4;
  expect_throw(bad, "n_heads");
  bad = a;
  bad.max_seq_len = 17;  // one block of 16
  expect_throw(bad, "max_seq_len");
  bad = a;
  bad.q = nullptr;
  expect_throw(bad, "q is null");
  if (ok) std::printf("ok   attention_decode validate rejects bad args\n");
  return ok;
}

}  // namespace

bool check_attention_decode(const FamilyOptions& o) {
  bool all_ok = check_validation();
  std::uint64_t seed = o.seed * 1000003u;
  for (const DecodeCase& dc : check_cases(o.quick)) {
    const int batch = static_cast<int>(dc.seq_lens.size());
    const int max_seq_len = *std::max_element(dc.seq_lens.begin(), dc.seq_lens.end());
    const PagedCache cache = make_block_table(dc.seq_lens, dc.block_size, ++seed);
    const std::size_t pool = static_cast<std::size_t>(cache.num_blocks) * dc.block_size * dc.n_kv_heads * dc.head_dim;
    const std::size_t q_elems = static_cast<std::size_t>(batch) * dc.n_heads * dc.head_dim;

    // Inputs rounded to fp16 on the host, so the twin sees exactly what the kernel reads.
    std::vector<float> q = randn(q_elems, ++seed, dc.q_scale), k = randn(pool, ++seed), v = randn(pool, ++seed);
    cpu::round_to_half(q);
    cpu::round_to_half(k);
    cpu::round_to_half(v);

    std::vector<float> want(q_elems);
    cpu::PagedKvView view;
    view.k = k.data();
    view.v = v.data();
    view.num_blocks = cache.num_blocks;
    view.block_size = dc.block_size;
    view.n_kv_heads = dc.n_kv_heads;
    view.head_dim = dc.head_dim;
    view.block_table = cache.block_table.data();
    view.max_blocks_per_seq = cache.max_blocks_per_seq;
    view.seq_lens = dc.seq_lens.data();
    cpu::paged_decode_attention(want.data(), q.data(), batch, dc.n_heads, view, 1);

    const DeviceBuffer<__half> d_q = upload_half(q), d_k = upload_half(k), d_v = upload_half(v);
    const DeviceBuffer<int> d_table = upload(cache.block_table), d_lens = upload(dc.seq_lens);
    DeviceBuffer<__half> d_out(q_elems);
    cuda::DecodeAttentionArgs args = make_args(d_q, d_out, d_k, d_v, d_table, d_lens, batch, dc.n_heads, dc.n_kv_heads,
                                               dc.head_dim, dc.block_size, cache, max_seq_len);

    for (const cuda::DecodeAttentionVersion& ver : cuda::kDecodeAttentionVersions) {
      if (!wants(o, ver.number)) continue;
      // Version 1 has no splits: run it once.
      const std::vector<int> splits_list = ver.number == 2 ? dc.splits : std::vector<int>{0};
      for (int splits : splits_list) {
        args.num_splits = splits;
        const int resolved = cuda::decode_num_splits(args);
        DeviceBuffer<float> workspace((cuda::decode_workspace_bytes(args) + sizeof(float) - 1) / sizeof(float));
        workspace.poison();
        args.workspace = workspace.get();
        d_out.poison();
        ver.run(args, nullptr);
        CUDA_CHECK(cudaGetLastError());
        const std::vector<float> got = download(d_out);

        std::string what = std::string("attention_decode ") + ver.name + " " + dc.name +
                           " h=" + std::to_string(dc.n_heads) + "/" + std::to_string(dc.n_kv_heads) +
                           " d=" + std::to_string(dc.head_dim) + " block=" + std::to_string(dc.block_size) +
                           " lens=" + join(dc.seq_lens);
        if (ver.number == 2)
          what += " splits=" + (splits == 0 ? "auto(" + std::to_string(resolved) + ")" : std::to_string(resolved));
        all_ok = check_close(what, got, want, static_cast<std::size_t>(dc.head_dim), kTolFp16) && all_ok;
      }
      args.workspace = nullptr;
    }

    // Version 3: the same K/V as 1-byte codes with a scale per (token, KV head).
    if (!wants(o, 3)) continue;
    for (const cuda::KvCode code : {cuda::KvCode::int8, cuda::KvCode::fp8_e4m3}) {
      const CodedPool kc = quantize_pool(k, dc.head_dim, code), vc = quantize_pool(v, dc.head_dim, code);
      cpu::QuantPagedKvView qview;
      qview.type = code == cuda::KvCode::int8 ? cpu::KvCodeType::int8 : cpu::KvCodeType::fp8_e4m3;
      qview.k_codes = kc.codes.data();
      qview.v_codes = vc.codes.data();
      qview.k_scales = kc.scales.data();
      qview.v_scales = vc.scales.data();
      qview.num_blocks = cache.num_blocks;
      qview.block_size = dc.block_size;
      qview.n_kv_heads = dc.n_kv_heads;
      qview.head_dim = dc.head_dim;
      qview.block_table = cache.block_table.data();
      qview.max_blocks_per_seq = cache.max_blocks_per_seq;
      qview.seq_lens = dc.seq_lens.data();
      std::vector<float> want_q(q_elems);
      cpu::paged_decode_attention_quant(want_q.data(), q.data(), batch, dc.n_heads, qview, 1);

      const DeviceBuffer<std::uint8_t> d_kc = upload_plain(kc.codes), d_vc = upload_plain(vc.codes);
      const DeviceBuffer<float> d_ks = upload_plain(kc.scales), d_vs = upload_plain(vc.scales);
      cuda::QuantDecodeAttentionArgs qa;
      qa.base = args;
      qa.code = code;
      qa.k_codes = d_kc.get();
      qa.v_codes = d_vc.get();
      qa.k_scales = d_ks.get();
      qa.v_scales = d_vs.get();
      for (int splits : dc.splits) {
        qa.base.num_splits = splits;
        const int resolved = cuda::decode_num_splits(qa.base);
        DeviceBuffer<float> workspace((cuda::decode_workspace_bytes(qa.base) + sizeof(float) - 1) / sizeof(float));
        workspace.poison();
        qa.base.workspace = workspace.get();
        d_out.poison();
        cuda::attention_decode_03_split_kv_quant(qa, nullptr);
        CUDA_CHECK(cudaGetLastError());
        const std::vector<float> got = download(d_out);
        const std::string what = std::string("attention_decode 03_split_kv_quant ") + cuda::kv_code_name(code) + " " +
                                 dc.name + " h=" + std::to_string(dc.n_heads) + "/" + std::to_string(dc.n_kv_heads) +
                                 " d=" + std::to_string(dc.head_dim) + " block=" + std::to_string(dc.block_size) +
                                 " lens=" + join(dc.seq_lens) + " splits=" +
                                 (splits == 0 ? "auto(" + std::to_string(resolved) + ")" : std::to_string(resolved));
        all_ok = check_close(what, got, want_q, static_cast<std::size_t>(dc.head_dim), kTolFp16) && all_ok;
      }
    }
  }
  return all_ok;
}

void bench_attention_decode(const FamilyOptions& o) {
  constexpr int kHeads = 32, kKvHeads = 8, kHeadDim = 128, kBlock = 16;
  struct Size {
    int batch, context;
  };
  std::vector<Size> sizes;
  if (o.quick) {
    sizes = {{1, 4096}};
  } else {
    for (int context : {4096, 32768})
      for (int batch : {1, 4, 16}) sizes.push_back({batch, context});
  }
  std::uint64_t seed = o.seed * 7919u;
  auto align256 = [](std::size_t b) { return (b + 255) / 256 * 256; };
  for (const Size& sz : sizes) {
    const std::vector<int> lens(sz.batch, sz.context);
    const PagedCache cache = make_block_table(lens, kBlock, ++seed);
    const std::size_t pool = static_cast<std::size_t>(cache.num_blocks) * kBlock * kKvHeads * kHeadDim;
    const std::size_t q_elems = static_cast<std::size_t>(sz.batch) * kHeads * kHeadDim;
    const std::size_t rows = pool / kHeadDim;  // (token slot, KV head) rows: version 3's scales
    // Each launch's K/V cache as one slot of a device-random pool: every slot a whole cache of
    // cache.num_blocks blocks (so the one block table is valid for each), its parts 256-byte
    // aligned; launch i reads slot i % copies (rotation_pool_copies). fp16 (01, 02): K, V.
    // Version 3: K codes, V codes, K scales, V scales. q, the block table, the lengths, the
    // workspace and out are shared: a decode step finds them in L2 (q and out are small).
    struct Layout {
      std::size_t v_at = 0, k_scales_at = 0, v_scales_at = 0, slot = 0;
      int copies = 0;
    };
    Layout l16, l8;
    l16.v_at = align256(pool * sizeof(__half));
    l16.slot = 2 * l16.v_at;
    l16.copies = rotation_pool_copies(l16.slot);
    l8.v_at = align256(pool);
    l8.k_scales_at = 2 * l8.v_at;
    l8.v_scales_at = l8.k_scales_at + align256(rows * sizeof(float));
    l8.slot = l8.v_scales_at + align256(rows * sizeof(float));
    l8.copies = rotation_pool_copies(l8.slot);
    const std::size_t pool_bytes = std::max(l16.slot * static_cast<std::size_t>(l16.copies),
                                            l8.slot * static_cast<std::size_t>(l8.copies));
    DeviceBuffer<__half> d_q(q_elems), d_out(q_elems), d_pool(pool_bytes / sizeof(__half));
    fill_random(d_q, ++seed, 1.0f);
    fill_random(d_pool, ++seed, 1.0f);
    d_out.poison();
    auto* const slots = reinterpret_cast<std::uint8_t*>(d_pool.get());
    const DeviceBuffer<int> d_table = upload(cache.block_table), d_lens = upload(lens);
    // k_cache and v_cache are set per launch (a slot of the pool); d_q only stands in here.
    cuda::DecodeAttentionArgs args = make_args(d_q, d_out, d_q, d_q, d_table, d_lens, sz.batch, kHeads, kKvHeads,
                                               kHeadDim, kBlock, cache, sz.context);
    args.num_splits = 0;
    DeviceBuffer<float> workspace((cuda::decode_workspace_bytes(args) + sizeof(float) - 1) / sizeof(float));
    args.workspace = workspace.get();

    // Bytes the operation must move: K and V of every valid key, q in, out written.
    const double kv_bytes = 2.0 * sz.batch * static_cast<double>(sz.context) * kKvHeads * kHeadDim * sizeof(__half);
    const double bytes = kv_bytes + 2.0 * q_elems * sizeof(__half);

    if (wants(o, 1) || wants(o, 2))
      std::printf("  K/V fp16: %d rotated copies of %.1f MiB\n", l16.copies, l16.slot / 1048576.0);
    for (const cuda::DecodeAttentionVersion& ver : cuda::kDecodeAttentionVersions) {
      if (!wants(o, ver.number)) continue;
      std::string shape = "batch=" + std::to_string(sz.batch) + " ctx=" + std::to_string(sz.context) + " h=32/8 d=128";
      if (ver.number == 2) shape += " splits=" + std::to_string(cuda::decode_num_splits(args));
      const Timing t = time_batched([&](cudaStream_t stream, long i) {
        const std::uint8_t* slot = slots + static_cast<std::size_t>(i % l16.copies) * l16.slot;
        cuda::DecodeAttentionArgs a = args;
        a.k_cache = reinterpret_cast<const __half*>(slot);
        a.v_cache = reinterpret_cast<const __half*>(slot + l16.v_at);
        ver.run(a, stream);
      });
      report(row_gbps("attention_decode", ver.name, shape, t, bytes));
    }
    if (!wants(o, 3)) continue;
    // Version 3: the pool's device-random bytes as codes (never zeros; an FP8 NaN code costs no
    // time), small positive scales written over each slot's scale parts (after the fp16 rows,
    // whose K/V they would otherwise cut into).
    for (int c = 0; c < l8.copies; ++c)
      for (const std::size_t at : {l8.k_scales_at, l8.v_scales_at})
        cuda::fill_constant(reinterpret_cast<float*>(slots + static_cast<std::size_t>(c) * l8.slot + at), rows, 0.01f);
    std::printf("  K/V int8/FP8: %d rotated copies of %.1f MiB\n", l8.copies, l8.slot / 1048576.0);
    const double q_bytes = kv_bytes / 2.0 + 2.0 * sz.batch * static_cast<double>(sz.context) * kKvHeads * sizeof(float) +
                           2.0 * q_elems * sizeof(__half);
    for (const cuda::KvCode code : {cuda::KvCode::int8, cuda::KvCode::fp8_e4m3}) {
      cuda::QuantDecodeAttentionArgs qa;
      qa.base = args;
      qa.code = code;
      const std::string shape = "batch=" + std::to_string(sz.batch) + " ctx=" + std::to_string(sz.context) +
                                " h=32/8 d=128 splits=" + std::to_string(cuda::decode_num_splits(args)) + " " +
                                cuda::kv_code_name(code);
      const Timing t = time_batched([&](cudaStream_t stream, long i) {
        const std::uint8_t* slot = slots + static_cast<std::size_t>(i % l8.copies) * l8.slot;
        cuda::QuantDecodeAttentionArgs a = qa;
        a.k_codes = slot;
        a.v_codes = slot + l8.v_at;
        a.k_scales = reinterpret_cast<const float*>(slot + l8.k_scales_at);
        a.v_scales = reinterpret_cast<const float*>(slot + l8.v_scales_at);
        cuda::attention_decode_03_split_kv_quant(a, stream);
      });
      report(row_gbps("attention_decode", "03_split_kv_quant", shape, t, q_bytes));
    }
  }
}

}  // namespace llm::harness
