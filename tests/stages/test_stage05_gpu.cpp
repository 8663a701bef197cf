// Stage 05 on the CUDA backend (labels stage05, gpu): the quantized matrices of quant_cuda.h on
// the device against stage 05 on the CPU backend, for the same weights. Exits 77 (ctest: skipped)
// where no GPU can run them. NOT YET RUN ON A GPU when written: the tolerances below are the ones
// stage 04's GPU check uses (fp16 activations against the CPU twin), not yet measured here.
//   [gpu-dequantize]  kernels/cuda/dequantize_half (the prefill path and Q4_1's) against its CPU
//                     twin, kernels/cpu's dequantize rounded to fp16: equal bit for bit
//   [gpu-vs-cpu]      per --weights (q8_0, q4_0, q4_1, fp8, f16), on the default model, a random
//                     model of awkward shape and one of head_dim 128 (context 520: graph-captured
//                     decode attention in 2 splits; w2 rows of 33 blocks): teacher-forced logits
//                     of a 6-token prompt (every matmul a GEMV: quant_gemv 01 (Q8_0, Q4_0, Q4_1) /
//                     03 (FP8)) and of a longer one (dequantize + cuBLAS), top-1 agreement >= 98% and max relative
//                     logit error <= kFp16LogitTol (3e-2); greedy tokens of 3 requests batched
//                     (decode steps of 1-3 rows, CUDA graphs) equal the CPU's up to a near-tie
//                     (top-2 gap < kNearTie = 2% of the largest |logit|)
//   [gpu-kv-append]   the quantized K/V cache's kernels against their CPU twins: rope_store_kv_quant
//                     (kernels/cuda/rope_kv.cuh) against llm::cpu::rope then stage 05's
//                     quantize_kv_int8 / quantize_kv_fp8 per (token, KV head), at SmolLM2's,
//                     Llama-3-8B's and a small head shape, tokens scattered over the slots: at
//                     position 0 (the rotation is the identity) codes, scales and q equal bit for
//                     bit; at positions up to 4000 scales within 1e-5 relative and codes within one
//                     step (the rotation's fp32 rounding may differ); zero, NaN and Inf rows as the
//                     CPU's (codes 0, the max as the scale). gather_kv_dequant (kv_gather.cuh)
//                     against decode x scale rounded to fp16: bit for bit, every code value.
//   [gpu-kv-vs-cpu]   --kv-cache int8 and fp8 on the CUDA backend against the same --kv-cache on the
//                     CPU backend (the K/V quantized by the same rule, read by attention_decode 03 /
//                     dequantized to fp16 for prefill on the GPU; codes and fp32 scales in the dot on
//                     the CPU), --weights f16 and q8_0, on both models (q8_0 also on the head_dim
//                     128 one: attention_decode 03's splits and merge): teacher-forced top-1 >= 98%,
//                     max relative logit error <= kFp16LogitTol (int8) or 2 x kFp16LogitTol (fp8: a
//                     code flipped by a rounding difference moves a value by up to 1/16 of it, int8's
//                     by 1/127 of the row's max); greedy tokens of 3 requests batched (decode steps:
//                     attention_decode 03, CUDA graphs) equal the CPU's up to a near-tie. Thresholds
//                     are stage 04's, not yet measured on a GPU.
//   [gpu-graphs]      decode steps of q4_0 / int8 K/V, q4_1 / f16 and fp8 / fp8 on the default model
//                     all replay CUDA graphs (a failed capture falls back to eager steps with a
//                     warning, which the comparisons above cannot see): one capture per batch size,
//                     graph launches = decode steps
//   [gpu-refusals]    what the CUDA backend refuses on a real device: an f32 K/V cache, f32 weights
#define CATCH_CONFIG_RUNNER
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>

#include "common/gguf.h"
#include "common/model_weights.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/fp8.h"
#include "kernels/cpu/half.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/quantize.h"
#include "kernels/cuda/dequantize_half.cuh"
#include "kernels/cuda/device_buffer.cuh"
#include "kernels/cuda/kv_gather.cuh"
#include "kernels/cuda/rope_kv.cuh"
#include "stages/04_cuda/backend.h"
#include "stages/04_cuda/gpu_engine.h"
#include "stages/05_quantization/kv_quant.h"
#include "stages/05_quantization/quant_cuda.h"
#include "stages/05_quantization/quant_engine.h"
#include "tests/helpers/random_model.h"
#include "tests/stages/stage04_checks.h"

using namespace llm;

namespace {

std::unique_ptr<stage05::QuantEngine> engine(const ModelWeights& w, const std::string& weights,
                                             const std::string& backend, int batch = 1,
                                             const std::string& kv_cache = "f16") {
  stage05::QuantEngineConfig c;
  c.stage04.batching = test::batching(batch, 256, 16);
  c.stage04.backend = backend;
  c.weights = weights;
  c.kv_cache = kv_cache;
  c.matmul = "fused";  // the CPU twin of the W*A16 GEMVs: weights dequantized in fp32, activations as they are
  stage05::BuiltQuantEngine e = stage05::make_quant_engine(w, nullptr, {}, c);
  REQUIRE(e.backend == backend);
  return std::move(e.engine);
}

std::vector<int> random_tokens(int vocab, int n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int> t(static_cast<std::size_t>(n));
  for (int& x : t) x = static_cast<int>(rng() % static_cast<std::uint64_t>(vocab));
  return t;
}

/// The checks of [gpu-vs-cpu] on one model (and of [gpu-kv-vs-cpu] with kv_caches int8, fp8):
/// every --weights of `modes` with every --kv-cache of `kv_caches`.
void check_model(const std::string& name, const ModelWeights& w,
                 const std::vector<std::string>& modes = {"q8_0", "q4_0", "q4_1", "fp8", "f16"},
                 const std::vector<std::string>& kv_caches = {"f16"}) {
  const int vocab = w.config.vocab_size;
  const int long_len = std::min(w.config.context_length - 1, 64);
  for (const std::string& kv : kv_caches)
    for (const std::string& mode : modes) {
      INFO(name << " --weights " << mode << " --kv-cache " << kv);
      auto cpu = engine(w, mode, "cpu", 3, kv);
      auto gpu = engine(w, mode, "cuda", 3, kv);
      const double tol = kv == "fp8" ? 2 * test::kFp16LogitTol : test::kFp16LogitTol;
      for (const int len : {6, long_len}) {
        const std::vector<int> tokens = random_tokens(vocab, len, 100 + static_cast<std::uint64_t>(len));
        const test::LogitAgreement a = test::compare_logits(gpu->logits(tokens), cpu->logits(tokens), vocab);
        WARN(name << " " << mode << " --kv-cache " << kv << ", " << len << " tokens teacher-forced ("
                  << (len <= 8 ? "GEMV" : "dequantize + cuBLAS") << "): top-1 " << a.top1_agree << "/" << a.positions
                  << ", max rel err " << a.max_rel_err << ", mean KL " << a.mean_kl);
        CHECK(a.top1_agree >= 0.98 * a.positions);
        CHECK(a.max_rel_err <= tol);
      }
      std::vector<Request> reqs;
      for (int i = 0; i < 3; ++i) {
        Request r;
        r.id = "r" + std::to_string(i);
        r.prompt = random_tokens(vocab, 5 + 7 * i, 7 + static_cast<std::uint64_t>(i));
        r.max_new_tokens = std::min(24, w.config.context_length - static_cast<int>(r.prompt.size()));
        reqs.push_back(r);
      }
      cpu->set_keep_logits(true);
      const std::vector<RequestResult> want = cpu->run(reqs, nullptr);
      const std::vector<RequestResult> got = gpu->run(reqs, nullptr);
      REQUIRE(got.size() == want.size());
      int near_ties = 0;
      for (std::size_t i = 0; i < want.size(); ++i) test::check_same_or_near_tie(got[i], want[i], vocab, near_ties);
      WARN(name << " " << mode << " --kv-cache " << kv << ": greedy, 3 requests batched: " << near_ties
                << " parted at a near-tie");
    }
}

/// The random model of awkward shape both GPU comparisons use: rows multiples of 32 (every
/// format), GQA 3 heads over 1, an odd vocabulary, untied classifier.
ModelWeights awkward_model() {
  test::RandomModelSpec s;
  s.name = "q-gqa-3-of-1";
  s.dim = 96, s.n_layers = 2, s.n_heads = 3, s.n_kv_heads = 1, s.hidden_dim = 160, s.vocab = 101, s.context = 128;
  s.tied = false, s.seed = 51;
  return test::make_random_weights(s);
}

/// A random model at Llama-3's head size (head_dim 128, 4 query heads over 1 KV head) whose other
/// two models' head_dim 32 and short contexts leave untried: a context of 520, so that decode
/// steps captured in a graph (bounded by the context) launch 2 splits of attention_decode 03, the
/// second past every sequence's end (the split workspace and the merge); and rows of 1056 weights
/// in w2 (33 blocks of 32: quant_gemv 01's second, one-block tile of a row). Tied classifier.
ModelWeights head128_model() {
  test::RandomModelSpec s;
  s.name = "q-d128-gqa4";
  s.dim = 512, s.n_layers = 2, s.n_heads = 4, s.n_kv_heads = 1, s.hidden_dim = 1056, s.vocab = 300, s.context = 520;
  s.rope_theta = 500000.0f, s.tied = true, s.seed = 52;
  return test::make_random_weights(s);
}

template <class T>
std::vector<T> download(const cuda::DeviceBuffer<T>& d) {
  std::vector<T> h(d.size());
  CUDA_CHECK(cudaMemcpy(h.data(), d.get(), d.bytes(), cudaMemcpyDeviceToHost));
  return h;
}

template <class T>
cuda::DeviceBuffer<T> upload(const std::vector<T>& h) {
  cuda::DeviceBuffer<T> d(h.size());
  CUDA_CHECK(cudaMemcpy(d.get(), h.data(), d.bytes(), cudaMemcpyHostToDevice));
  return d;
}

/// The value of a K/V code as the CPU twin decodes it.
float decode_code(std::uint8_t code, cuda::KvCode c) {
  return c == cuda::KvCode::int8 ? static_cast<float>(static_cast<std::int8_t>(code))
                                 : cpu::fp8_to_fp32(code, cpu::Fp8Format::E4M3);
}

/// Codes one step apart at most: int8 values differ by <= 1; E4M3 codes of the same sign are
/// ordered by magnitude (adjacent codes, adjacent values), of opposite signs both near zero.
bool within_one_code(std::uint8_t a, std::uint8_t b, cuda::KvCode c) {
  if (c == cuda::KvCode::int8)
    return std::abs(static_cast<int>(static_cast<std::int8_t>(a)) - static_cast<std::int8_t>(b)) <= 1;
  if ((a & 0x80) == (b & 0x80)) return std::abs(static_cast<int>(a & 0x7F) - static_cast<int>(b & 0x7F)) <= 1;
  return (a & 0x7F) <= 1 && (b & 0x7F) <= 1;
}

bool same_float(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0;
}

/// [gpu-kv-append] for one head shape and code: n tokens into scattered slots of a cache of
/// `slots` slots, at position 0 (exact) or random positions (within a code).
void check_append(int n_heads, int n_kv_heads, int head_dim, cuda::KvCode code, bool position_zero,
                  std::uint64_t seed) {
  INFO("heads " << n_heads << "/" << n_kv_heads << " x " << head_dim << ", " << cuda::kv_code_name(code)
                << (position_zero ? ", position 0" : ", positions up to 4000"));
  const int n = 7, slots = 40, hd = head_dim, kvd = n_kv_heads * hd, row = (n_heads + 2 * n_kv_heads) * hd;
  const float theta = 10000.0f;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> qkv(static_cast<std::size_t>(n) * row);
  for (float& x : qkv) x = normal(rng);
  const std::size_t k0 = static_cast<std::size_t>(n_heads) * hd, v0 = k0 + kvd;
  std::fill_n(&qkv[1 * row + k0], hd, 0.0f);                        // token 1: a zero K head
  qkv[2 * row + v0 + 3] = std::numeric_limits<float>::quiet_NaN();  // token 2: a NaN in V head 0
  qkv[3 * row + k0 + 5] = std::numeric_limits<float>::infinity();   // token 3: an Inf in K head 0
  qkv[4 * row + v0 + 1] = 300.0f;                                   // token 4: an outlier
  std::vector<int> positions(n), slot_of(n);
  std::vector<int> perm(slots);
  for (int i = 0; i < slots; ++i) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), rng);
  for (int t = 0; t < n; ++t) {
    positions[t] = position_zero ? 0 : static_cast<int>(rng() % 4001);
    slot_of[t] = perm[t];
  }
  cuda::DeviceBuffer<float> d_qkv = upload(qkv);
  cuda::DeviceBuffer<int> d_pos = upload(positions), d_slots = upload(slot_of);
  cuda::DeviceBuffer<__half> d_q(static_cast<std::size_t>(n) * n_heads * hd);
  cuda::DeviceBuffer<std::uint8_t> d_kc(static_cast<std::size_t>(slots) * kvd),
      d_vc(static_cast<std::size_t>(slots) * kvd);
  cuda::DeviceBuffer<float> d_ks(static_cast<std::size_t>(slots) * n_kv_heads),
      d_vs(static_cast<std::size_t>(slots) * n_kv_heads);
  for (auto* b : {&d_kc, &d_vc}) b->poison();
  for (auto* b : {&d_ks, &d_vs}) b->poison();
  d_q.poison();
  cuda::RopeStoreKvQuantArgs a;
  a.qkv = d_qkv.get();
  a.positions = d_pos.get();
  a.slots = d_slots.get();
  a.q_out = d_q.get();
  a.k_codes = d_kc.get();
  a.v_codes = d_vc.get();
  a.k_scales = d_ks.get();
  a.v_scales = d_vs.get();
  a.code = code;
  a.n = n;
  a.n_heads = n_heads;
  a.n_kv_heads = n_kv_heads;
  a.head_dim = hd;
  a.theta = theta;
  cuda::rope_store_kv_quant(a, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<std::uint8_t> kc = download(d_kc), vc = download(d_vc);
  const std::vector<float> ks = download(d_ks), vs = download(d_vs);
  const std::vector<__half> q = download(d_q);

  int wrong = 0;
  auto fail = [&](const std::string& what) {
    if (wrong++ < 10) UNSCOPED_INFO(what);
  };
  for (int t = 0; t < n; ++t) {
    std::vector<float> r(qkv.begin() + static_cast<std::ptrdiff_t>(t) * row,
                         qkv.begin() + static_cast<std::ptrdiff_t>(t + 1) * row);
    cpu::rope(r.data(), n_heads + n_kv_heads, hd, positions[t], theta);
    for (int i = 0; i < n_heads * hd; ++i) {
      std::uint16_t got;
      std::memcpy(&got, &q[static_cast<std::size_t>(t) * n_heads * hd + i], 2);
      const std::uint16_t want = cpu::float_to_half(r[static_cast<std::size_t>(i)]);
      const bool ok = position_zero ? got == want
                                    : std::fabs(cpu::half_to_float(got) - cpu::half_to_float(want)) <=
                                          std::ldexp(std::fabs(r[static_cast<std::size_t>(i)]), -9) + 1e-6f;
      if (!ok)
        fail("token " + std::to_string(t) + " q[" + std::to_string(i) + "]: got fp16 " + std::to_string(got) +
             ", want " + std::to_string(want));
    }
    for (int kv = 0; kv < 2; ++kv)
      for (int g = 0; g < n_kv_heads; ++g) {
        const float* x = r.data() + (kv == 0 ? k0 : v0) + static_cast<std::size_t>(g) * hd;
        std::vector<std::uint8_t> want_codes(static_cast<std::size_t>(hd));
        float want_scale = 0.0f;
        if (code == cuda::KvCode::int8)
          stage05::quantize_kv_int8(x, hd, reinterpret_cast<std::int8_t*>(want_codes.data()), &want_scale);
        else
          stage05::quantize_kv_fp8(x, hd, want_codes.data(), &want_scale);
        const std::size_t head = static_cast<std::size_t>(slot_of[t]) * n_kv_heads + g;
        const float got_scale = (kv == 0 ? ks : vs)[head];
        const std::uint8_t* got_codes = &(kv == 0 ? kc : vc)[head * hd];
        const std::string where =
            std::string(kv == 0 ? "K" : "V") + " of token " + std::to_string(t) + " head " + std::to_string(g);
        const bool scale_ok = position_zero || !std::isfinite(want_scale) || want_scale == 0.0f
                                  ? same_float(got_scale, want_scale)
                                  : std::fabs(got_scale - want_scale) <= 1e-5f * want_scale;
        if (!scale_ok) fail(where + ": scale " + std::to_string(got_scale) + ", want " + std::to_string(want_scale));
        for (int j = 0; j < hd; ++j) {
          const bool ok = position_zero ? got_codes[j] == want_codes[static_cast<std::size_t>(j)]
                                        : within_one_code(got_codes[j], want_codes[static_cast<std::size_t>(j)], code);
          if (!ok)
            fail(where + " code " + std::to_string(j) + ": " + std::to_string(got_codes[j]) + ", want " +
                 std::to_string(want_codes[static_cast<std::size_t>(j)]));
        }
      }
  }
  CHECK(wrong == 0);
}

/// [gpu-kv-append]'s gather: every code value, random scales, a permuted block table.
void check_gather(cuda::KvCode code) {
  INFO(cuda::kv_code_name(code));
  const int block_size = 8, blocks = 5, slots = block_size * blocks, n_kv_heads = 2, hd = 64, kvd = n_kv_heads * hd;
  std::mt19937_64 rng(17);
  std::vector<std::uint8_t> kc(static_cast<std::size_t>(slots) * kvd), vc(kc.size());
  for (std::size_t i = 0; i < kc.size(); ++i)
    kc[i] = static_cast<std::uint8_t>(i), vc[i] = static_cast<std::uint8_t>(rng());
  std::vector<float> ks(static_cast<std::size_t>(slots) * n_kv_heads), vs(ks.size());
  std::uniform_real_distribution<float> u(-6.0f, 2.0f);
  for (std::size_t i = 0; i < ks.size(); ++i) ks[i] = std::exp2(u(rng)), vs[i] = std::exp2(u(rng));
  ks[3] = 0.0f;  // a zero row's scale
  const std::vector<int> table = {3, 0, 4, 1, 2};
  const int len = slots - 3;  // the last block partly used
  cuda::DeviceBuffer<std::uint8_t> d_kc = upload(kc), d_vc = upload(vc);
  cuda::DeviceBuffer<float> d_ks = upload(ks), d_vs = upload(vs);
  cuda::DeviceBuffer<int> d_table = upload(table);
  cuda::DeviceBuffer<__half> d_k(static_cast<std::size_t>(len) * kvd), d_v(static_cast<std::size_t>(len) * kvd);
  d_k.poison();
  d_v.poison();
  cuda::GatherKvArgs g;
  g.k_out = d_k.get();
  g.v_out = d_v.get();
  g.table = d_table.get();
  g.k_codes = d_kc.get();
  g.v_codes = d_vc.get();
  g.k_scales = d_ks.get();
  g.v_scales = d_vs.get();
  g.code = code;
  g.len = len;
  g.block_size = block_size;
  g.n_kv_heads = n_kv_heads;
  g.head_dim = hd;
  cuda::gather_kv_dequant(g, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<__half> k = download(d_k), v = download(d_v);
  int wrong = 0;
  for (int p = 0; p < len; ++p) {
    const std::size_t slot =
        static_cast<std::size_t>(table[static_cast<std::size_t>(p / block_size)]) * block_size + p % block_size;
    for (int i = 0; i < kvd; ++i) {
      for (int kv = 0; kv < 2; ++kv) {
        const std::uint8_t c = (kv == 0 ? kc : vc)[slot * kvd + i];
        const float scale = (kv == 0 ? ks : vs)[slot * n_kv_heads + i / hd];
        const std::uint16_t want = cpu::float_to_half(decode_code(c, code) * scale);
        std::uint16_t got;
        std::memcpy(&got, &(kv == 0 ? k : v)[static_cast<std::size_t>(p) * kvd + i], 2);
        const bool both_nan = std::isnan(cpu::half_to_float(got)) && std::isnan(cpu::half_to_float(want));
        if (got != want && !both_nan && wrong++ < 10)
          UNSCOPED_INFO("position " << p << (kv == 0 ? " K" : " V") << "[" << i << "]: code " << int(c) << " scale "
                                    << scale << ": got fp16 " << got << ", want " << want);
      }
    }
  }
  CHECK(wrong == 0);
}

}  // namespace

TEST_CASE("the dequantization kernel equals its CPU twin bit for bit", "[gpu-dequantize]") {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const auto& [rows, cols] : {std::pair<int, int>{37, 96}, {3, 4096}, {1, 32}}) {
    const std::size_t n = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
    std::vector<float> x(n);
    for (float& v : x) v = normal(rng) * 0.05f;
    x[3] = 0.0f;  // a zero and a large outlier among them
    x[n / 2] = 7.0f;
    for (const cuda::StoredFormat f :
         {cuda::StoredFormat::Q8_0, cuda::StoredFormat::Q4_0, cuda::StoredFormat::Q4_1, cuda::StoredFormat::FP8_E4M3}) {
      INFO("format " << static_cast<int>(f) << ", " << rows << " x " << cols);
      std::vector<std::uint8_t> stored;
      std::vector<float> scales, want(n);
      if (f == cuda::StoredFormat::FP8_E4M3) {
        stored.resize(n);
        for (int r = 0; r < rows; ++r) {
          const std::size_t o = static_cast<std::size_t>(r) * cols;
          scales.push_back(cpu::quantize_fp8_row(&x[o], &stored[o], static_cast<std::size_t>(cols), cpu::Fp8Format::E4M3));
          for (int j = 0; j < cols; ++j)
            want[o + j] = cpu::fp8_to_fp32(stored[o + j], cpu::Fp8Format::E4M3) * scales.back();
        }
      } else {
        const TensorType t = f == cuda::StoredFormat::Q8_0   ? TensorType::Q8_0
                             : f == cuda::StoredFormat::Q4_0 ? TensorType::Q4_0
                                                             : TensorType::Q4_1;
        stored.resize(cpu::row_bytes(t, n));
        cpu::quantize(t, x.data(), stored.data(), n);
        cpu::dequantize(t, stored.data(), want.data(), n);
      }
      cuda::DeviceBuffer<std::uint8_t> d_src(stored.size());
      cuda::DeviceBuffer<float> d_scales(std::max<std::size_t>(1, scales.size()));
      cuda::DeviceBuffer<__half> d_out(n);
      d_out.poison();
      CUDA_CHECK(cudaMemcpy(d_src.get(), stored.data(), stored.size(), cudaMemcpyHostToDevice));
      if (!scales.empty())
        CUDA_CHECK(cudaMemcpy(d_scales.get(), scales.data(), scales.size() * sizeof(float), cudaMemcpyHostToDevice));
      cuda::dequantize_to_half(f, d_src.get(), d_scales.get(), d_out.get(), rows, cols, nullptr);
      CUDA_CHECK(cudaDeviceSynchronize());
      std::vector<std::uint16_t> got(n);
      CUDA_CHECK(cudaMemcpy(got.data(), d_out.get(), n * sizeof(std::uint16_t), cudaMemcpyDeviceToHost));
      int shown = 0, wrong = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint16_t w = cpu::float_to_half(want[i]);
        if (got[i] != w) {
          ++wrong;
          if (shown++ < 10)
            UNSCOPED_INFO("index " << i << ": got fp16 bits " << got[i] << " (" << cpu::half_to_float(got[i]) << "), want "
                                   << w << " (" << want[i] << ")");
        }
      }
      CHECK(wrong == 0);
    }
  }
  CHECK_THROWS_WITH(cuda::dequantize_to_half(cuda::StoredFormat::Q8_0, nullptr, nullptr, nullptr, 2, 40, nullptr),
                    Catch::Contains("cols = 40"));
}

TEST_CASE("stage 05 on the GPU agrees with stage 05 on the CPU for the same weights", "[gpu-vs-cpu]") {
  const std::string path = test::repo_path("datasets/models/tiny-target.gguf");
  Model m = load_model(path);
  check_model("default model", m.weights);
  check_model("random model", awkward_model());
  check_model("head_dim 128 model", head128_model());
}

TEST_CASE("the quantized K/V cache's append and gather kernels equal their CPU twins", "[gpu-kv-append]") {
  std::uint64_t seed = 300;
  for (const cuda::KvCode code : {cuda::KvCode::int8, cuda::KvCode::fp8_e4m3}) {
    for (const bool zero : {true, false}) {
      check_append(9, 3, 64, code, zero, ++seed);    // SmolLM2-135M
      check_append(32, 8, 128, code, zero, ++seed);  // Llama-3-8B
      check_append(3, 1, 32, code, zero, ++seed);    // small heads, GQA 3 over 1
    }
    check_gather(code);
  }
  cuda::RopeStoreKvQuantArgs bad;
  bad.n = 1;
  bad.head_dim = 64;
  CHECK_THROWS_WITH(cuda::rope_store_kv_quant(bad, nullptr), Catch::Contains("k_codes is null"));
  bad.head_dim = 63;
  CHECK_THROWS_WITH(cuda::rope_store_kv_quant(bad, nullptr), Catch::Contains("head_dim = 63"));
}

TEST_CASE("an int8 / fp8 K/V cache on the GPU agrees with the same K/V cache on the CPU", "[gpu-kv-vs-cpu]") {
  const std::string path = test::repo_path("datasets/models/tiny-target.gguf");
  Model m = load_model(path);
  check_model("default model", m.weights, {"f16", "q8_0"}, {"int8", "fp8"});
  check_model("random model", awkward_model(), {"f16", "q8_0"}, {"int8", "fp8"});
  check_model("head_dim 128 model", head128_model(), {"q8_0"}, {"int8", "fp8"});
  // The pool on the device, in the format's bytes: the stats' bytes per block are int8's.
  auto gpu = engine(m.weights, "q8_0", "cuda", 3, "int8");
  Request r;
  r.id = "r";
  r.prompt = random_tokens(m.config().vocab_size, 12, 9);
  r.max_new_tokens = 4;
  (void)gpu->run({r}, nullptr);
  const EngineStats st = gpu->stats();
  CHECK(st.kv_pool_bytes ==
        stage05::kv_block_bytes(m.config(), "int8", 16) * static_cast<std::size_t>(gpu->inner().num_blocks()));
}

TEST_CASE("decode steps of quantized weights and K/V run from CUDA graphs", "[gpu-graphs]") {
  // A capture that fails (an operation of the quantized path that a graph cannot record) only
  // warns and runs the rest eagerly, which [gpu-vs-cpu] cannot tell apart: count the graph steps.
  const ModelWeights w = load_model(test::repo_path("datasets/models/tiny-target.gguf")).weights;
  for (const auto& [weights, kv] :
       {std::pair<std::string, std::string>{"q4_0", "int8"}, {"q4_1", "f16"}, {"fp8", "fp8"}}) {
    INFO("--weights " << weights << " --kv-cache " << kv);
    const stage05::QuantWeights q = stage05::make_quant_weights(w, nullptr, weights);
    stage04::GpuEngineConfig c;
    c.batching = test::batching(3, 256, 16);
    c.backend = "cuda";
    c.cuda.kv_cache = stage05::kv_storage(kv).type;
    const stage03::StepExecutor* exec = nullptr;
    stage04::GpuEngine g = stage04::make_cuda_engine(w, {}, c, [&](const stage04::CudaOptions& o, int* fits) {
      auto e = stage05::make_quant_cuda_executor(w, q, o, fits);
      exec = e.get();
      return e;
    });
    std::vector<Request> reqs;
    for (int i = 0; i < 3; ++i) {
      Request r;
      r.id = "r" + std::to_string(i);
      r.prompt = random_tokens(w.config.vocab_size, 4 + 5 * i, 40 + static_cast<std::uint64_t>(i));
      r.max_new_tokens = 12 - 4 * i;  // decode steps of 3, then 2, then 1 sequences
      reqs.push_back(r);
    }
    (void)g.engine->run(reqs, nullptr);
    long long launches = 0, captures = 0, eager = 0;
    REQUIRE(exec != nullptr);
    REQUIRE(stage04::cuda_step_counts(*exec, &launches, &captures, &eager));
    const long decode_steps = g.engine->stats().decode_steps;
    INFO(launches << " graph launches, " << captures << " captures, " << eager << " eager steps, " << decode_steps
                  << " decode steps");
    CHECK(decode_steps >= 11);
    CHECK(captures == 3);             // batches of 3, 2 and 1 sequences
    CHECK(launches == decode_steps);  // every decode step (at most 3 rows: all GEMVs) replayed a graph
  }
}

TEST_CASE("the CUDA backend refuses an f32 K/V cache and f32 weights by flag, on a real device", "[gpu-refusals]") {
  const ModelWeights w = load_model(test::repo_path("datasets/models/tiny-target.gguf")).weights;
  stage05::QuantEngineConfig c;
  c.stage04.batching = test::batching(1, 256, 16);
  c.stage04.backend = "cuda";
  c.weights = "q8_0";
  c.kv_cache = "f32";
  CHECK_THROWS_WITH(stage05::make_quant_engine(w, nullptr, {}, c), Catch::Contains("--kv-cache f32"));
  c.kv_cache = "f16";
  c.weights = "f32";
  CHECK_THROWS_WITH(stage05::make_quant_engine(w, nullptr, {}, c), Catch::Contains("--weights f32"));
}

int main(int argc, char** argv) {
  const std::string why = stage04::cuda_unavailable_reason();
  if (!why.empty()) {
    std::printf("stage 05 GPU checks skipped: %s\n", why.c_str());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
