// GPU check of kernels/cuda/rmsnorm against its CPU twin (kernels/cpu/ops.h). Exits 77 (ctest:
// skipped) when there is no CUDA device.
#include <cuda_runtime.h>

#include <cstdio>
#include <random>
#include <vector>

#include "kernels/cpu/ops.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/device.h"
#include "kernels/cuda/rmsnorm.cuh"
#include "tests/helpers/compare.h"

int main() {
  if (llm::cuda::device_count() == 0) {
    std::printf("no CUDA device: skipped\n");
    return 77;
  }
  std::printf("device: %s\n", llm::cuda::device_name().c_str());
  std::mt19937_64 rng(42);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  bool ok = true;
  for (auto [n, dim] : {std::pair{1, 576}, {33, 4096}, {7, 37}, {128, 1}}) {
    std::vector<float> x(static_cast<std::size_t>(n) * static_cast<std::size_t>(dim)), w(static_cast<std::size_t>(dim));
    for (auto& v : x) v = normal(rng);
    for (auto& v : w) v = normal(rng);
    std::vector<float> want(x.size()), got(x.size());
    llm::cpu::rmsnorm(want.data(), x.data(), w.data(), n, dim, 1e-5f);
    float *dx, *dw, *dy;
    CUDA_CHECK(cudaMalloc(&dx, x.size() * 4));
    CUDA_CHECK(cudaMalloc(&dw, w.size() * 4));
    CUDA_CHECK(cudaMalloc(&dy, x.size() * 4));
    CUDA_CHECK(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dw, w.data(), w.size() * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemset(dy, 0xFF, x.size() * 4));  // poison: 0xFFFFFFFF is a NaN
    llm::cuda::rmsnorm(dy, dx, dw, n, dim, 1e-5f);
    CUDA_CHECK(cudaMemcpy(got.data(), dy, x.size() * 4, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaFree(dx));
    CUDA_CHECK(cudaFree(dw));
    CUDA_CHECK(cudaFree(dy));
    const auto cmp = llm::test::compare_rows(got, want, static_cast<std::size_t>(dim), 1e-5);
    std::printf("rmsnorm n=%d dim=%d: max rel err %.3g %s\n%s", n, dim, cmp.max_rel, cmp.ok ? "ok" : "FAIL",
                cmp.report.c_str());
    ok = ok && cmp.ok;
  }
  return ok ? 0 : 1;
}
