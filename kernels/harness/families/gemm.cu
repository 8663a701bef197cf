// The prefill GEMM family: cuBLAS (kernels/cuda/gemm_cublas.cuh) against llm::cpu::matmul.
#include <cstdio>
#include <string>

#include "kernels/cpu/half.h"
#include "kernels/cpu/ops.h"
#include "kernels/cuda/gemm_cublas.cuh"
#include "kernels/harness/families/families.h"

namespace llm::harness {

namespace {

struct GemmShape {
  int n, in, out;
};

std::string name(const GemmShape& s) {
  return "n=" + std::to_string(s.n) + " " + std::to_string(s.out) + "x" + std::to_string(s.in);
}

}  // namespace

bool check_gemm(const FamilyOptions& o) {
  bool ok = true;
  cuda::CublasGemm gemm;
  const GemmShape shapes[] = {{1, 64, 64}, {17, 576, 1536}, {128, 4096, 512}, {33, 1000, 77}, {300, 128, 4096}};
  for (const GemmShape& s : shapes) {
    for (const bool accumulate : {false, true}) {
      const std::uint64_t seed = o.seed * 1000 + static_cast<std::uint64_t>(s.n * 7 + s.in * 3 + s.out);
      std::vector<float> x = randn(static_cast<std::size_t>(s.n) * s.in, seed);
      std::vector<float> w = randn(static_cast<std::size_t>(s.out) * s.in, seed + 1, 0.05f);
      std::vector<float> y0 = randn(static_cast<std::size_t>(s.n) * s.out, seed + 2);
      cpu::round_to_half(x);
      cpu::round_to_half(w);
      std::vector<float> want(y0.size());
      cpu::matmul(want.data(), x.data(), w.data(), s.n, s.in, s.out);
      if (accumulate)
        for (std::size_t i = 0; i < want.size(); ++i) want[i] += y0[i];
      auto dx = upload_half(x), dw = upload_half(w);
      auto dy = upload(y0);
      if (!accumulate) dy.poison();
      gemm.run(dy.get(), dx.get(), dw.get(), s.n, s.in, s.out, accumulate, nullptr);
      CUDA_CHECK(cudaGetLastError());
      // Inputs are exact in fp16 and both sides accumulate in fp32: only the order differs.
      ok = check_close("cublas " + name(s) + (accumulate ? " accumulate" : ""), download(dy), want,
                       static_cast<std::size_t>(s.out), 10 * kTolFp32) &&
           ok;
    }
  }
  return ok;
}

void bench_gemm(const FamilyOptions& o) {
  cuda::CublasGemm gemm;
  std::vector<GemmShape> shapes = {{512, 4096, 4096}, {2048, 4096, 4096}, {2048, 4096, 14336}, {8192, 4096, 4096}};
  if (o.quick) shapes.resize(1);
  for (const GemmShape& s : shapes) {
    DeviceBuffer<__half> x(static_cast<std::size_t>(s.n) * s.in), w(static_cast<std::size_t>(s.out) * s.in);
    DeviceBuffer<float> y(static_cast<std::size_t>(s.n) * s.out);
    CUDA_CHECK(cudaMemset(x.get(), 0x3C, x.bytes()));  // about 1.06: never time zeros
    CUDA_CHECK(cudaMemset(w.get(), 0x2C, w.bytes()));  // about 0.06
    const Timing t = time_launch([&](cudaStream_t st) { gemm.run(y.get(), x.get(), w.get(), s.n, s.in, s.out, false, st); });
    report(row_tflops("gemm", "cublas", name(s), t, 2.0 * s.n * static_cast<double>(s.in) * s.out));
  }
}

}  // namespace llm::harness
