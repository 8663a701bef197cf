// Attention over a KV cache stored as codes (kernels/cpu/attention.h, *_quant: stage 05's
// --kv-cache and the CPU twin of the int8/fp8 split-KV decode kernel):
//   int8 / fp8 E4M3 codes with a scale per (token, KV head)  against the definition in double
//                        (attention_reference) on the dequantized rows, at awkward shapes: GQA,
//                        head dims 20/32/64/128, block sizes 1/3/7/16, lengths across blocks,
//                        shuffled blocks, every split count, prefill chunks at any start
//   f32 / f16 codes      bit for bit equal to paged_decode_attention and attention_online_softmax
//                        on the decoded values (stage 04's CPU backend is held to those)
// Outputs are poisoned first; a NaN scale must make the comparison fail.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/fp8.h"
#include "kernels/cpu/half.h"
#include "tests/helpers/checks.h"

using namespace llm;

namespace {

/// One plane (K or V) of a pool: the codes as bytes, the scales, and what they stand for.
struct Plane {
  std::vector<std::uint8_t> codes;
  std::vector<float> scales;  // [rows] (int8, fp8), empty otherwise
  std::vector<float> values;  // [rows * head_dim]: scale * decode(code), rounded to float once
};

/// Encodes x ([rows, head_dim]) as `type`, one scale per row of head_dim values for int8/fp8
/// (amax / 127 and amax / 448). Written here, apart from stage 05's kv_quant.cpp.
Plane encode(const std::vector<float>& x, int head_dim, cpu::KvCodeType type) {
  const std::size_t hd = static_cast<std::size_t>(head_dim), rows = x.size() / hd;
  Plane p;
  p.codes.resize(x.size() * cpu::kv_code_bytes(type));
  p.values.resize(x.size());
  switch (type) {
    case cpu::KvCodeType::f32:
      std::memcpy(p.codes.data(), x.data(), p.codes.size());
      p.values = x;
      break;
    case cpu::KvCodeType::f16:
      for (std::size_t i = 0; i < x.size(); ++i) {
        const std::uint16_t h = cpu::float_to_half(x[i]);
        std::memcpy(&p.codes[2 * i], &h, 2);
        p.values[i] = cpu::half_to_float(h);
      }
      break;
    case cpu::KvCodeType::int8:
    case cpu::KvCodeType::fp8_e4m3: {
      const bool int8 = type == cpu::KvCodeType::int8;
      p.scales.resize(rows);
      for (std::size_t r = 0; r < rows; ++r) {
        double amax = 0.0;
        for (std::size_t d = 0; d < hd; ++d) amax = std::max(amax, std::fabs(static_cast<double>(x[r * hd + d])));
        const double scale = amax / (int8 ? 127.0 : 448.0);
        p.scales[r] = static_cast<float>(scale);
        for (std::size_t d = 0; d < hd; ++d) {
          const std::size_t i = r * hd + d;
          const double y = scale == 0.0 ? 0.0 : x[i] / static_cast<double>(p.scales[r]);
          double decoded;
          if (int8) {
            const auto c = static_cast<std::int8_t>(std::clamp(std::nearbyint(y), -127.0, 127.0));
            std::memcpy(&p.codes[i], &c, 1);
            decoded = c;
          } else {
            p.codes[i] = cpu::fp32_to_fp8(static_cast<float>(y), cpu::Fp8Format::E4M3);
            decoded = cpu::fp8_to_fp32(p.codes[i], cpu::Fp8Format::E4M3);
          }
          p.values[i] = static_cast<float>(static_cast<double>(p.scales[r]) * decoded);
        }
      }
      break;
    }
  }
  return p;
}

/// A random paged pool for `lens` sequences, its blocks shuffled (some belong to nobody).
struct Pool {
  int batch = 0, max_blocks = 0, num_blocks = 0;
  std::vector<int> table, lens;
  Plane k, v;
  cpu::QuantPagedKvView view(cpu::KvCodeType type) const {
    return {type,          k.codes.data(), v.codes.data(), k.scales.empty() ? nullptr : k.scales.data(),
            v.scales.empty() ? nullptr : v.scales.data(), num_blocks, block_size, n_kv_heads, head_dim,
            table.data(),  max_blocks,     lens.data()};
  }
  int block_size = 16, n_kv_heads = 1, head_dim = 64;
  /// Sequence b's first `len` dequantized K (or V) rows, contiguous: [len, n_kv_heads, head_dim].
  std::vector<float> gather(const Plane& p, int b, int len) const {
    const std::size_t token = static_cast<std::size_t>(n_kv_heads) * head_dim;
    std::vector<float> out(static_cast<std::size_t>(len) * token);
    for (int pos = 0; pos < len; ++pos) {
      const std::size_t slot =
          static_cast<std::size_t>(table[static_cast<std::size_t>(b * max_blocks + pos / block_size)]) * block_size +
          static_cast<std::size_t>(pos % block_size);
      std::copy_n(p.values.begin() + static_cast<long>(slot * token), token,
                  out.begin() + static_cast<long>(pos * token));
    }
    return out;
  }
};

Pool make_pool(std::vector<int> lens, int n_kv_heads, int head_dim, int block_size, cpu::KvCodeType type,
               std::uint64_t seed) {
  Pool P;
  P.lens = std::move(lens);
  P.batch = static_cast<int>(P.lens.size());
  P.n_kv_heads = n_kv_heads, P.head_dim = head_dim, P.block_size = block_size;
  const int max_len = *std::max_element(P.lens.begin(), P.lens.end());
  P.max_blocks = (max_len + block_size - 1) / block_size;
  P.num_blocks = P.batch * P.max_blocks + 3;
  const std::size_t elems = static_cast<std::size_t>(P.num_blocks) * block_size * n_kv_heads * head_dim;
  std::vector<float> k = test::randn(elems, seed), v = test::randn(elems, seed + 1);
  // Rows of very different sizes (as real K has: a few large channels): a per-row scale matters.
  for (std::size_t r = 0; r < elems / static_cast<std::size_t>(head_dim); r += 5)
    for (int d = 0; d < head_dim; ++d) k[r * head_dim + d] *= 8.0f, v[r * head_dim + d] *= 0.05f;
  P.k = encode(k, head_dim, type);
  P.v = encode(v, head_dim, type);
  std::vector<int> order(static_cast<std::size_t>(P.num_blocks));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(static_cast<unsigned>(seed)));
  P.table.assign(order.begin(), order.begin() + static_cast<long>(P.batch) * P.max_blocks);
  return P;
}

struct Case {
  std::vector<int> lens;
  int n_heads, n_kv_heads, head_dim, block_size;
};
const Case kCases[] = {{{1}, 4, 4, 64, 16},         {{17, 130, 1, 64}, 32, 8, 128, 16}, {{45, 9}, 9, 3, 64, 1},
                       {{100, 33}, 8, 2, 32, 7},    {{50, 49, 51}, 6, 1, 20, 3},      {{16, 32, 15}, 2, 2, 64, 16}};
constexpr cpu::KvCodeType kScaled[] = {cpu::KvCodeType::int8, cpu::KvCodeType::fp8_e4m3};

}  // namespace

TEST_CASE("paged_decode_attention_quant on int8/fp8 codes equals the definition on the dequantized rows",
          "[quant_attention]") {
  std::uint64_t seed = 100;
  for (const cpu::KvCodeType type : kScaled)
    for (const Case& c : kCases) {
      const Pool P = make_pool(c.lens, c.n_kv_heads, c.head_dim, c.block_size, type, seed += 10);
      const std::vector<float> q = test::randn(static_cast<std::size_t>(P.batch) * c.n_heads * c.head_dim, seed + 5);
      std::vector<float> want(q.size());
      for (int b = 0; b < P.batch; ++b) {
        const int len = P.lens[static_cast<std::size_t>(b)];
        const std::vector<float> k = P.gather(P.k, b, len), v = P.gather(P.v, b, len);
        const cpu::AttentionShape s{1, 1, len, c.n_heads, c.n_kv_heads, c.head_dim, true};
        const std::size_t off = static_cast<std::size_t>(b) * c.n_heads * c.head_dim;
        cpu::attention_reference(want.data() + off, q.data() + off, k.data(), v.data(), s);
      }
      for (const int splits : {1, 2, 3, 17, 2000}) {
        std::vector<float> got(q.size());
        harness::poison(got);
        cpu::paged_decode_attention_quant(got.data(), q.data(), P.batch, c.n_heads, P.view(type), splits);
        INFO(cpu::kv_code_name(type) << ": heads " << c.n_heads << "/" << c.n_kv_heads << ", head_dim " << c.head_dim
                                     << ", block size " << c.block_size << ", " << splits << " splits");
        test::check_rows(got, want, static_cast<std::size_t>(c.head_dim), 1e-5);
      }
    }
}

TEST_CASE("paged_prefill_attention_quant on int8/fp8 codes equals the causal definition for any chunk and tile",
          "[quant_attention]") {
  std::uint64_t seed = 500;
  for (const cpu::KvCodeType type : kScaled)
    for (const Case& c : kCases) {
      const Pool P = make_pool(c.lens, c.n_kv_heads, c.head_dim, c.block_size, type, seed += 10);
      for (int b = 0; b < P.batch; ++b) {
        const int len = P.lens[static_cast<std::size_t>(b)];
        // The whole prompt, its last token alone, and a chunk that starts inside a block.
        for (const int q_len : {len, 1, std::max(1, len / 2 + 1)}) {
          const std::vector<float> q = test::randn(static_cast<std::size_t>(q_len) * c.n_heads * c.head_dim, seed + 7);
          const std::vector<float> k = P.gather(P.k, b, len), v = P.gather(P.v, b, len);
          std::vector<float> want(q.size());
          cpu::attention_reference(want.data(), q.data(), k.data(), v.data(),
                                   cpu::AttentionShape{1, q_len, len, c.n_heads, c.n_kv_heads, c.head_dim, true});
          for (const int tile : {1, 5, 64}) {
            std::vector<float> got(q.size());
            harness::poison(got);
            cpu::paged_prefill_attention_quant(got.data(), q.data(), q_len, c.n_heads, b, P.view(type), tile);
            INFO(cpu::kv_code_name(type) << ": heads " << c.n_heads << "/" << c.n_kv_heads << ", head_dim "
                                         << c.head_dim << ", block size " << c.block_size << ", len " << len
                                         << ", q_len " << q_len << ", tile " << tile);
            test::check_rows(got, want, static_cast<std::size_t>(c.head_dim), 1e-5);
          }
        }
      }
    }
}

TEST_CASE("f32/f16 codes give paged_decode_attention's and attention_online_softmax's results bit for bit",
          "[quant_attention]") {
  std::uint64_t seed = 900;
  for (const cpu::KvCodeType type : {cpu::KvCodeType::f32, cpu::KvCodeType::f16})
    for (const Case& c : kCases) {
      const Pool P = make_pool(c.lens, c.n_kv_heads, c.head_dim, c.block_size, type, seed += 10);
      INFO(cpu::kv_code_name(type) << ": heads " << c.n_heads << "/" << c.n_kv_heads << ", head_dim " << c.head_dim
                                   << ", block size " << c.block_size);
      // Decode: the float twin over the decoded pool.
      const std::vector<float> q = test::randn(static_cast<std::size_t>(P.batch) * c.n_heads * c.head_dim, seed + 3);
      const cpu::PagedKvView fv{P.k.values.data(), P.v.values.data(), P.num_blocks, P.block_size, P.n_kv_heads,
                                P.head_dim,        P.table.data(),    P.max_blocks, P.lens.data()};
      for (const int splits : {1, 3}) {
        std::vector<float> want(q.size()), got(q.size());
        harness::poison(got);
        cpu::paged_decode_attention(want.data(), q.data(), P.batch, c.n_heads, fv, splits);
        cpu::paged_decode_attention_quant(got.data(), q.data(), P.batch, c.n_heads, P.view(type), splits);
        const auto diff = std::mismatch(got.begin(), got.end(), want.begin(),
                                        [](float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; });
        INFO(splits << " splits; first difference at " << (diff.first - got.begin()));
        CHECK(diff.first == got.end());
      }
      // Prefill: attention_online_softmax over the gathered rows, same tile.
      for (int b = 0; b < P.batch; ++b) {
        const int len = P.lens[static_cast<std::size_t>(b)], q_len = std::max(1, len / 3);
        const std::vector<float> qp = test::randn(static_cast<std::size_t>(q_len) * c.n_heads * c.head_dim, seed + 4);
        const std::vector<float> k = P.gather(P.k, b, len), v = P.gather(P.v, b, len);
        std::vector<float> want(qp.size()), got(qp.size());
        harness::poison(got);
        cpu::attention_online_softmax(want.data(), qp.data(), k.data(), v.data(),
                                      cpu::AttentionShape{1, q_len, len, c.n_heads, c.n_kv_heads, c.head_dim, true}, 64);
        cpu::paged_prefill_attention_quant(got.data(), qp.data(), q_len, c.n_heads, b, P.view(type), 64);
        const auto diff = std::mismatch(got.begin(), got.end(), want.begin(),
                                        [](float a, float x) { return std::memcmp(&a, &x, sizeof a) == 0; });
        INFO("prefill of sequence " << b << ", q_len " << q_len << "; first difference at " << (diff.first - got.begin()));
        CHECK(diff.first == got.end());
      }
    }
}

TEST_CASE("quantized-KV attention: a NaN scale fails the check, impossible arguments are refused by name",
          "[quant_attention]") {
  Pool P = make_pool({40, 7}, 2, 32, 5, cpu::KvCodeType::int8, 77);
  const int n_heads = 4;
  const std::vector<float> q = test::randn(static_cast<std::size_t>(P.batch) * n_heads * 32, 78);
  std::vector<float> want(q.size()), got(q.size());
  cpu::paged_decode_attention_quant(want.data(), q.data(), P.batch, n_heads, P.view(cpu::KvCodeType::int8), 2);
  // One token's V scale NaN: the output of its sequence is NaN and the comparison must say so.
  P.v.scales[static_cast<std::size_t>(P.table[1]) * P.block_size * 2] = std::numeric_limits<float>::quiet_NaN();
  harness::poison(got);
  cpu::paged_decode_attention_quant(got.data(), q.data(), P.batch, n_heads, P.view(cpu::KvCodeType::int8), 2);
  CHECK_FALSE(harness::compare_rows(got, want, 32, 1.0).ok);

  const cpu::QuantPagedKvView good = P.view(cpu::KvCodeType::int8);
  cpu::QuantPagedKvView kv = good;
  kv.k_scales = nullptr;
  CHECK_THROWS_WITH(cpu::paged_decode_attention_quant(got.data(), q.data(), P.batch, n_heads, kv, 1),
                    Catch::Contains("k_scales"));
  kv = good;
  CHECK_THROWS_WITH(cpu::paged_decode_attention_quant(got.data(), q.data(), P.batch, 3, kv, 1),
                    Catch::Contains("n_heads = 3"));
  std::vector<int> bad_table = P.table;
  bad_table[0] = P.num_blocks;  // one past the pool
  kv.block_table = bad_table.data();
  CHECK_THROWS_WITH(cpu::paged_decode_attention_quant(got.data(), q.data(), P.batch, n_heads, kv, 1),
                    Catch::Contains("block_table entry = " + std::to_string(P.num_blocks)));
  CHECK_THROWS_WITH(cpu::paged_prefill_attention_quant(got.data(), q.data(), 41, n_heads, 0, good, 8),
                    Catch::Contains("seq_lens[seq] = 40"));
  CHECK(cpu::kv_code_bytes(cpu::KvCodeType::f32) == 4);
  CHECK(cpu::kv_code_bytes(cpu::KvCodeType::f16) == 2);
  CHECK(cpu::kv_code_bytes(cpu::KvCodeType::int8) == 1);
  CHECK(cpu::kv_code_bytes(cpu::KvCodeType::fp8_e4m3) == 1);
}
