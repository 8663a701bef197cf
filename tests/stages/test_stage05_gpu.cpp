// Stage 05 on the CUDA backend (labels stage05, gpu): the quantized matrices of quant_cuda.h on
// the device against stage 05 on the CPU backend, for the same weights. Exits 77 (ctest: skipped)
// where no GPU can run them. NOT YET RUN ON A GPU when written: the tolerances below are the ones
// stage 04's GPU check uses (fp16 activations against the CPU twin), not yet measured here.
//   [gpu-dequantize]  kernels/cuda/dequantize_half (the prefill path and Q4_1's) against its CPU
//                     twin, kernels/cpu's dequantize rounded to fp16: equal bit for bit
//   [gpu-vs-cpu]      per --weights (q8_0, q4_0, q4_1, fp8, f16), on the default model and a random
//                     model of awkward shape: teacher-forced logits of a 6-token prompt (every
//                     matmul a GEMV: quant_gemv 01 / 03, Q4_1 dequantize + fp16 GEMV) and of a
//                     longer one (dequantize + cuBLAS), top-1 agreement >= 98% and max relative
//                     logit error <= kFp16LogitTol (3e-2); greedy tokens of 3 requests batched
//                     (decode steps of 1-3 rows, CUDA graphs) equal the CPU's up to a near-tie
//                     (top-2 gap < kNearTie = 2% of the largest |logit|)
//   [gpu-refusals]    what the CUDA backend refuses on a real device: an int8 K/V cache, f32 weights
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <random>

#include "common/gguf.h"
#include "common/model_weights.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/fp8.h"
#include "kernels/cpu/half.h"
#include "kernels/cpu/quantize.h"
#include "kernels/cuda/dequantize_half.cuh"
#include "kernels/cuda/device_buffer.cuh"
#include "stages/04_cuda/backend.h"
#include "stages/05_quantization/quant_engine.h"
#include "tests/helpers/random_model.h"
#include "tests/stages/stage04_checks.h"

using namespace llm;

namespace {

std::unique_ptr<stage05::QuantEngine> engine(const ModelWeights& w, const std::string& weights, const std::string& backend,
                                             int batch = 1) {
  stage05::QuantEngineConfig c;
  c.stage04.batching = test::batching(batch, 256, 16);
  c.stage04.backend = backend;
  c.weights = weights;
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

/// The checks of [gpu-vs-cpu] on one model.
void check_model(const std::string& name, const ModelWeights& w) {
  const int vocab = w.config.vocab_size;
  const int long_len = std::min(w.config.context_length - 1, 64);
  for (const char* mode : {"q8_0", "q4_0", "q4_1", "fp8", "f16"}) {
    INFO(name << " --weights " << mode);
    auto cpu = engine(w, mode, "cpu", 3);
    auto gpu = engine(w, mode, "cuda", 3);
    for (const int len : {6, long_len}) {
      const std::vector<int> tokens = random_tokens(vocab, len, 100 + static_cast<std::uint64_t>(len));
      const test::LogitAgreement a = test::compare_logits(gpu->logits(tokens), cpu->logits(tokens), vocab);
      WARN(name << " " << mode << ", " << len << " tokens teacher-forced (" << (len <= 8 ? "GEMV" : "dequantize + cuBLAS")
                << "): top-1 " << a.top1_agree << "/" << a.positions << ", max rel err " << a.max_rel_err
                << ", mean KL " << a.mean_kl);
      CHECK(a.top1_agree >= 0.98 * a.positions);
      CHECK(a.max_rel_err <= test::kFp16LogitTol);
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
    WARN(name << " " << mode << ": greedy, 3 requests batched: " << near_ties << " parted at a near-tie");
  }
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
  // Rows multiples of 32 (every format), GQA 3 heads over 1, an odd vocabulary, untied classifier.
  test::RandomModelSpec s;
  s.name = "q-gqa-3-of-1";
  s.dim = 96, s.n_layers = 2, s.n_heads = 3, s.n_kv_heads = 1, s.hidden_dim = 160, s.vocab = 101, s.context = 128;
  s.tied = false, s.seed = 51;
  check_model("random model", test::make_random_weights(s));
}

TEST_CASE("the CUDA backend refuses an int8 K/V cache and f32 weights by flag, on a real device", "[gpu-refusals]") {
  const ModelWeights w = load_model(test::repo_path("datasets/models/tiny-target.gguf")).weights;
  stage05::QuantEngineConfig c;
  c.stage04.batching = test::batching(1, 256, 16);
  c.stage04.backend = "cuda";
  c.weights = "q8_0";
  c.kv_cache = "int8";
  CHECK_THROWS_WITH(stage05::make_quant_engine(w, nullptr, {}, c), Catch::Contains("--kv-cache int8"));
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
