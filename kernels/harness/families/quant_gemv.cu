// quant_gemv.cu: the kernel harness's quantized decode-GEMV family (kernels/cuda/quant_gemv/).
//
// check: each version with each format it takes (01: Q8_0, Q4_0 and Q4_1; 02: Q8_0 and Q4_0; 03:
//        FP8 E4M3) against its CPU twin on the same stored weights and fp16-rounded x:
//          Q8_0/Q4_0/Q4_1: llm::cpu::qmm::matmul_02_fused (kernels/cpu/quant_matmul), the weights
//                     as GGUF blocks from llm::cpu::quantize (Q4_1: w = d q + m per weight; 01
//                     adds m * sum(x) once per block); version 02 gets them through
//                     qgemv::pack_for_gemv (prepack.h), whose inverse is tested in CI;
//          FP8:       rows from llm::cpu::quantize_fp8_row, decoded by fp8_to_fp32 times the row
//                     scale, then llm::cpu::matmul.
//        Shapes: n = 1..8 on SmolLM2's projections (576 -> 1536 and back; --quick: n = 1, 3, 8),
//        Llama-3-8B's (4096 x 4096, 14336 x 4096, 4096 x 14336, 1024 x 4096 at n = 1; the three
//        large ones only without --quick) and awkward ones: out = 1, 33, 517 (not whole groups of
//        8 rows), in = 32 (one block), 96 (a step of 4 chunks only partly used), 1056 (one tile of
//        32 blocks and one block more), FP8 in = 48. y is poisoned (NaN) first without
//        `accumulate`, starts from random values with it. Tolerance 1e-3 of the row's largest
//        value (kTolFp32 * 10), as the fp16 GEMV: both sides multiply the same exact values in
//        fp32; the kernels scale a block's (or row's) sum once, the twins each weight, and the
//        sums run in other orders. Version 01's padding bytes are 0xFF (an fp16 NaN as a
//        scale): a kernel that used them would fail. validate() must name a bad field.
// bench: Llama-3-8B's shapes at n = 1 and 8 (--quick: n = 1): 4096 x 4096 (q/o proj), 14336 x 4096
//        (gate/up), 4096 x 14336 (down), 1024 x 4096 (k/v proj); every variant side by side in one run, the
//        fp16 GEMV 02 (stage 04's decode matmul) first as the baseline: kRounds rounds, each timing
//        every variant in turn (time_batched: the median of 20 batches of 32 back-to-back launches,
//        launch i reading copy i % copies of the weights and scales, enough copies that each
//        launch finds its weights evicted from L2 (two L2s of other copies read since their last
//        use), as a decode step meets them; a per-launch event pair around a cold launch of a
//        2-10 us kernel would add microseconds of event and launch overhead to every time and
//        squeeze every ratio towards 1); a row reports the median of the rounds' medians (min-max
//        printed), GB/s = (W as stored, scales and padding included + x + y bytes) / time (bytes
//        moved, as the copy ceiling counts its read and written bytes), its share of the copy
//        bandwidth, and the speed-up over the fp16 GEMV of the same round set. Weights are
//        device-random bytes (never zeros); their values do not change the time.
//
//   build/kernels/kernel_harness check quant_gemv [--version N] [--quick]
//   build/kernels/kernel_harness bench quant_gemv [--version N] [--quick] [--json FILE]
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/fp8.h"
#include "kernels/cpu/half.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/quant_matmul/quant_matmul.h"
#include "kernels/cpu/quantize.h"
#include "kernels/cuda/gemv/gemv.cuh"
#include "kernels/cuda/quant_gemv/prepack.h"
#include "kernels/cuda/quant_gemv/quant_gemv.cuh"
#include "kernels/harness/families/families.h"

namespace llm::harness {

namespace {

using cuda::QuantFormat;

struct Case {
  int n, in, out;
};

template <class T>
DeviceBuffer<T> upload_vector(const std::vector<T>& v) {
  DeviceBuffer<T> d(v.size());
  if (!v.empty()) CUDA_CHECK(cudaMemcpy(d.get(), v.data(), d.bytes(), cudaMemcpyHostToDevice));
  return d;
}

bool wants(const FamilyOptions& o, int version) { return o.version == 0 || o.version == version; }

TensorType gguf_type(QuantFormat f) {
  return f == QuantFormat::Q8_0 ? TensorType::Q8_0 : f == QuantFormat::Q4_0 ? TensorType::Q4_0 : TensorType::Q4_1;
}

std::vector<Case> check_cases(bool quick, QuantFormat f) {
  std::vector<Case> cases;
  for (int n = 1; n <= cuda::kQuantGemvMaxRows; ++n) {
    if (quick && n != 1 && n != 3 && n != 8) continue;
    cases.push_back({n, 576, 1536});
    cases.push_back({n, 1536, 576});
  }
  cases.push_back({1, 4096, 4096});
  cases.push_back({1, 4096, 1024});
  if (!quick) {
    cases.push_back({8, 4096, 4096});
    cases.push_back({1, 4096, 14336});
    cases.push_back({1, 14336, 4096});
  }
  for (int n : {1, 3, 8}) {
    cases.push_back({n, 4096, 1});
    cases.push_back({n, 32, 33});
    cases.push_back({n, 96, 517});
    cases.push_back({n, 1056, 9});
    if (f == QuantFormat::FP8_E4M3) cases.push_back({n, 48, 7});
  }
  return cases;
}

/// The weights of one check, stored as the format keeps them, and the twin's product.
struct Stored {
  std::vector<std::uint8_t> gguf;    // Q8_0/Q4_0/Q4_1 rows
  std::vector<std::uint8_t> codes;   // FP8 codes [out][in]
  std::vector<float> fp8_scales;     // FP8 scale per row
};

Stored make_weights(QuantFormat f, const Case& c, std::uint64_t seed) {
  const std::vector<float> W = randn(static_cast<std::size_t>(c.out) * c.in, seed);
  Stored s;
  if (f == QuantFormat::FP8_E4M3) {
    s.codes.resize(W.size());
    s.fp8_scales.resize(static_cast<std::size_t>(c.out));
    for (int o = 0; o < c.out; ++o)
      s.fp8_scales[o] = cpu::quantize_fp8_row(W.data() + static_cast<std::size_t>(o) * c.in,
                                              s.codes.data() + static_cast<std::size_t>(o) * c.in,
                                              static_cast<std::size_t>(c.in), cpu::Fp8Format::E4M3);
    return s;
  }
  const TensorType t = gguf_type(f);
  const std::size_t rb = cpu::row_bytes(t, static_cast<std::size_t>(c.in));
  s.gguf.resize(rb * static_cast<std::size_t>(c.out));
  for (int o = 0; o < c.out; ++o)
    cpu::quantize(t, W.data() + static_cast<std::size_t>(o) * c.in, s.gguf.data() + o * rb, static_cast<std::size_t>(c.in));
  return s;
}

/// The CPU twin: y[n, out] = x W^T with W as stored.
std::vector<float> twin(QuantFormat f, const Case& c, const Stored& s, const std::vector<float>& x) {
  std::vector<float> y(static_cast<std::size_t>(c.n) * c.out);
  if (f == QuantFormat::FP8_E4M3) {
    std::vector<float> W(s.codes.size());
    for (int o = 0; o < c.out; ++o)
      for (int j = 0; j < c.in; ++j) {
        const std::size_t k = static_cast<std::size_t>(o) * c.in + j;
        W[k] = cpu::fp8_to_fp32(s.codes[k], cpu::Fp8Format::E4M3) * s.fp8_scales[o];
      }
    cpu::matmul(y.data(), x.data(), W.data(), c.n, c.in, c.out);
    return y;
  }
  cpu::qmm::QuantMatrix m;
  m.type = gguf_type(f);
  m.data = s.gguf.data();
  m.in = c.in;
  m.out = c.out;
  cpu::qmm::matmul_02_fused(y.data(), x.data(), m, c.n);
  return y;
}

/// The weights on the device in the layout `version` reads.
struct DeviceWeights {
  DeviceBuffer<std::uint8_t> W;
  DeviceBuffer<std::uint16_t> half_scales;  // 02
  DeviceBuffer<float> float_scales;         // 03
  const void* scales() const {
    return half_scales.size() ? static_cast<const void*>(half_scales.get()) : static_cast<const void*>(float_scales.get());
  }
};

DeviceWeights upload_weights(int version, QuantFormat f, const Case& c, const Stored& s) {
  DeviceWeights d;
  if (version == 1) {
    std::vector<std::uint8_t> padded(cuda::quant_gemv_01_buffer_bytes(f, c.out, c.in), 0xFF);
    std::memcpy(padded.data(), s.gguf.data(), s.gguf.size());
    d.W = upload_vector(padded);
  } else if (version == 2) {
    const cuda::qgemv::PackedMatrix p = cuda::qgemv::pack_for_gemv(gguf_type(f), s.gguf.data(), c.out, c.in);
    d.W = upload_vector(p.quants);
    d.half_scales = upload_vector(p.scales);
  } else {
    d.W = upload_vector(s.codes);
    d.float_scales = upload_vector(s.fp8_scales);
  }
  return d;
}

/// validate() must refuse impossible args, naming the field.
bool check_validation() {
  cuda::QuantGemvArgs a;
  a.W = a.scales = reinterpret_cast<const void*>(256);
  a.x = reinterpret_cast<const __half*>(256);
  a.y = reinterpret_cast<float*>(256);
  a.in = 64;
  a.out = 3;
  bool ok = true;
  auto expect_throw = [&](const cuda::QuantGemvArgs& bad, int version, const char* text) {
    try {
      cuda::validate(bad, version);
      std::printf("FAIL quant_gemv validate: accepted bad args (%s)\n", text);
      ok = false;
    } catch (const std::invalid_argument& e) {
      if (std::string(e.what()).find(text) == std::string::npos) {
        std::printf("FAIL quant_gemv validate: message \"%s\" does not say \"%s\"\n", e.what(), text);
        ok = false;
      }
    }
  };
  cuda::validate(a, 1);
  cuda::validate(a, 2);
  auto bad = a;
  bad.n = cuda::kQuantGemvMaxRows + 1;
  expect_throw(bad, 1, "n = 9");
  bad = a;
  bad.in = 48;
  expect_throw(bad, 2, "in = 48");
  bad = a;
  bad.out = 0;
  expect_throw(bad, 1, "out = 0");
  bad = a;
  bad.x = reinterpret_cast<const __half*>(258);
  expect_throw(bad, 2, "x = ");
  bad = a;
  bad.scales = nullptr;
  expect_throw(bad, 2, "scales = null");
  bad = a;
  bad.format = QuantFormat::FP8_E4M3;
  expect_throw(bad, 1, "not taken");
  expect_throw(a, 3, "not taken");
  bad = a;
  bad.format = QuantFormat::Q4_1;
  cuda::validate(bad, 1);  // 01 reads Q4_1 as stored; 02's packer does not take it
  expect_throw(bad, 2, "Q4_1 is not taken");
  if (ok) std::printf("ok   quant_gemv validate rejects bad args\n");
  return ok;
}

}  // namespace

bool check_quant_gemv(const FamilyOptions& o) {
  bool all_ok = check_validation();
  std::uint64_t seed = o.seed * 0x9E3779B97F4A7C15ull;
  for (QuantFormat f : {QuantFormat::Q8_0, QuantFormat::Q4_0, QuantFormat::Q4_1, QuantFormat::FP8_E4M3}) {
    if (f == QuantFormat::FP8_E4M3 && !cuda::device_has_fp8()) {
      std::printf("  skip FP8_E4M3: this GPU has no FP8 conversions (compute capability < 8.9)\n");
      continue;
    }
    for (const Case& c : check_cases(o.quick, f)) {
      const Stored s = make_weights(f, c, ++seed);
      std::vector<float> x = randn(static_cast<std::size_t>(c.n) * c.in, ++seed);
      cpu::round_to_half(x);  // the twin multiplies the very values the kernel reads
      const std::vector<float> y0 = randn(static_cast<std::size_t>(c.n) * c.out, ++seed);
      const std::vector<float> product = twin(f, c, s, x);
      const DeviceBuffer<__half> d_x = upload_half(x);
      for (const cuda::QuantGemvVersion& ver : cuda::kQuantGemvVersions) {
        if (!wants(o, ver.number) || !ver.takes(f)) continue;
        const DeviceWeights w = upload_weights(ver.number, f, c, s);
        for (bool accumulate : {false, true}) {
          DeviceBuffer<float> d_y = upload(y0);
          if (!accumulate) d_y.poison();
          std::vector<float> want = product;
          if (accumulate)
            for (std::size_t i = 0; i < want.size(); ++i) want[i] += y0[i];
          cuda::QuantGemvArgs args;
          args.format = f;
          args.W = w.W.get();
          args.scales = w.scales();
          args.x = d_x.get();
          args.y = d_y.get();
          args.n = c.n;
          args.in = c.in;
          args.out = c.out;
          args.accumulate = accumulate;
          ver.run(args, nullptr);
          CUDA_CHECK(cudaGetLastError());
          const std::vector<float> got = download(d_y);
          const std::string what = std::string(ver.name) + " " + cuda::quant_format_name(f) + " n=" +
                                   std::to_string(c.n) + " in=" + std::to_string(c.in) + " out=" +
                                   std::to_string(c.out) + (accumulate ? " accumulate" : "");
          all_ok = check_close(what, got, want, static_cast<std::size_t>(c.out), kTolFp32 * 10) && all_ok;
        }
      }
    }
  }
  return all_ok;
}

void bench_quant_gemv(const FamilyOptions& o) {
  struct Size {
    int out, in;
    const char* what;
  };
  std::vector<Size> sizes = {
      {4096, 4096, "q/o proj"}, {14336, 4096, "gate/up"}, {4096, 14336, "down"}, {1024, 4096, "k/v proj"}};
  std::vector<int> rows = {1, cuda::kQuantGemvMaxRows};
  if (o.quick) rows = {1};  // gpu_check --quick: every Llama-3-8B shape at batch 1 (issue 14's goals)
  constexpr int kRounds = 3;
  const bool fp8 = cuda::device_has_fp8();
  auto align256 = [](std::size_t b) { return (b + 255) / 256 * 256; };
  std::uint64_t seed = o.seed * 7919u;
  for (const Size& sz : sizes) {
    const cuda::qgemv::PackedShape p8{cuda::qgemv::PackedType::Q8_0, sz.in, sz.out};
    const cuda::qgemv::PackedShape p4{cuda::qgemv::PackedType::Q4_0, sz.in, sz.out};
    const std::size_t fp16_bytes = static_cast<std::size_t>(sz.out) * sz.in * 2;
    // Each variant's weights (and scales) as one slot: {bytes read per call, W's offset in the
    // slot, the scales' offset, the slot's size}. The slots of a variant repeat through one
    // device-random pool (never zeros; the values do not change the time), enough copies that
    // each launch reads weights evicted from L2 since their last use (rotation_copies).
    struct Layout {
      double bytes = 0;
      std::size_t scales_at = 0, slot = 0;
      int copies = 0;
    };
    auto layout = [&](std::size_t w_bytes, std::size_t s_bytes) {
      Layout l;
      l.bytes = static_cast<double>(w_bytes + s_bytes);
      l.scales_at = align256(w_bytes);
      l.slot = l.scales_at + align256(s_bytes);
      l.copies = rotation_copies(l.slot);
      return l;
    };
    struct Variant {
      std::string name;
      Layout l;
      std::function<void(cudaStream_t, const std::uint8_t*, int)> run;  // (stream, slot, n)
    };
    std::vector<Variant> variants;
    variants.push_back({"fp16 gemv 02 (baseline)", layout(fp16_bytes, 0), {}});
    std::vector<std::pair<const cuda::QuantGemvVersion*, QuantFormat>> quant;
    for (const cuda::QuantGemvVersion& ver : cuda::kQuantGemvVersions) {
      if (!wants(o, ver.number)) continue;
      for (QuantFormat f : {QuantFormat::Q8_0, QuantFormat::Q4_0, QuantFormat::Q4_1, QuantFormat::FP8_E4M3}) {
        if (!ver.takes(f) || (f == QuantFormat::FP8_E4M3 && !fp8)) continue;
        Layout l;
        if (ver.number == 1) {
          l = layout(cuda::quant_gemv_01_buffer_bytes(f, sz.out, sz.in), 0);
        } else if (ver.number == 2) {
          const auto& p = f == QuantFormat::Q8_0 ? p8 : p4;
          l = layout(p.quant_chunks() * cuda::qgemv::kChunkBytes, p.scale_count() * 2);
        } else {
          l = layout(static_cast<std::size_t>(sz.out) * sz.in, 4 * static_cast<std::size_t>(sz.out));
        }
        variants.push_back({std::string(cuda::quant_format_name(f)) + " " + ver.name, l, {}});
        quant.push_back({&ver, f});
      }
    }
    std::size_t pool_bytes = 0;
    for (const Variant& v : variants) pool_bytes = std::max(pool_bytes, v.l.slot * static_cast<std::size_t>(v.l.copies));
    DeviceBuffer<__half> d_pool(pool_bytes / 2);
    fill_random(d_pool, ++seed);
    DeviceBuffer<__half> d_x(static_cast<std::size_t>(cuda::kQuantGemvMaxRows) * sz.in);
    DeviceBuffer<float> d_y(static_cast<std::size_t>(cuda::kQuantGemvMaxRows) * sz.out);
    fill_random(d_x, ++seed);
    d_y.poison();
    const auto* pool = reinterpret_cast<const std::uint8_t*>(d_pool.get());

    variants[0].run = [&](cudaStream_t s, const std::uint8_t* slot, int n) {
      cuda::GemvArgs g;
      g.W = reinterpret_cast<const __half*>(slot);
      g.x = d_x.get();
      g.y = d_y.get();
      g.n = n;
      g.in = sz.in;
      g.out = sz.out;
      cuda::gemv_02_warp_vectorized(g, s);
    };
    for (std::size_t q = 0; q < quant.size(); ++q) {
      const cuda::QuantGemvVersion* ver = quant[q].first;
      const QuantFormat f = quant[q].second;
      const std::size_t scales_at = variants[q + 1].l.scales_at;
      variants[q + 1].run = [&, ver, f, scales_at](cudaStream_t s, const std::uint8_t* slot, int n) {
        cuda::QuantGemvArgs a;
        a.format = f;
        a.W = slot;
        a.scales = ver->number == 1 ? nullptr : slot + scales_at;
        a.x = d_x.get();
        a.y = d_y.get();
        a.n = n;
        a.in = sz.in;
        a.out = sz.out;
        ver->run(a, s);
      };
    }

    for (int n : rows) {
      // Rounds: every variant in turn, so that a drift of the clocks touches them all alike.
      std::vector<std::vector<double>> ms(variants.size());
      for (int round = 0; round < kRounds; ++round)
        for (std::size_t v = 0; v < variants.size(); ++v) {
          const Variant& var = variants[v];
          ms[v].push_back(time_batched([&](cudaStream_t s, long i) {
                            var.run(s, pool + static_cast<std::size_t>(i % var.l.copies) * var.l.slot, n);
                          }).median_ms);
        }
      const std::string shape = "n=" + std::to_string(n) + " out=" + std::to_string(sz.out) + " in=" +
                                std::to_string(sz.in) + " (" + sz.what + ")";
      double base_ms = 0;
      for (std::size_t v = 0; v < variants.size(); ++v) {
        std::vector<double> m = ms[v];
        std::sort(m.begin(), m.end());
        Timing t{m[m.size() / 2], m.front(), kRounds};
        const double bytes = variants[v].l.bytes + 2.0 * n * sz.in + 4.0 * n * sz.out;
        report(row_gbps("quant_gemv", variants[v].name, shape, t, bytes));
        if (v == 0) base_ms = t.median_ms;
        std::printf("      rounds %.4f-%.4f ms; %.2fx the fp16 GEMV; %d rotated copies of %.1f MiB\n", m.front(),
                    m.back(), base_ms / t.median_ms, variants[v].l.copies, variants[v].l.slot / 1048576.0);
      }
    }
  }
}

}  // namespace llm::harness
