// 01_naive.cu: decode GEMV, version 1: the baseline.
//
// One thread per output row o walks its row of W element by element and multiplies each weight
// with the same column of every x row (up to kGemvMaxRows fp32 accumulators in registers), so W
// is read once for all n rows. Correct, and slow for a clear reason: at each step the 32 threads
// of a warp read 32 weights `in` halves apart (8 KiB apart for in = 4096), so every 2-byte load
// touches its own 32-byte sector: the memory system moves 16x the bytes the kernel uses, and
// it relies on L1/L2 to keep the rest of each sector for the next steps.
// 02_warp_vectorized.cu fixes it by giving each row to a warp.
//
// Run: build/kernels/kernel_harness check gemv --version 1
//      build/kernels/kernel_harness bench gemv --version 1
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/gemv/gemv.cuh"

namespace llm::cuda {

namespace {

constexpr int kThreads = 256;

void require(bool ok, const char* field, long long value, const char* rule) {
  if (!ok) throw std::invalid_argument(std::string("GemvArgs: ") + field + " = " + std::to_string(value) + ": " + rule);
}

void require_pointer(const void* p, const char* field) {
  if (p == nullptr) throw std::invalid_argument(std::string("GemvArgs: ") + field + " is null");
  if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0) {
    char addr[32];
    std::snprintf(addr, sizeof(addr), "%p", p);
    throw std::invalid_argument(std::string("GemvArgs: ") + field + " = " + addr + " is not 16-byte aligned");
  }
}

/// grid ceil(out / kThreads), block kThreads: thread `row` computes y[:, row].
__global__ void __launch_bounds__(kThreads)
    gemv_naive_kernel(const __half* W, const __half* x, float* y, int n, int in, int out, bool accumulate) {
  const int row = blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= out) return;
  const __half* w = W + static_cast<std::size_t>(row) * in;
  float acc[kGemvMaxRows] = {};
  for (int i = 0; i < in; ++i) {
    const float wi = __half2float(w[i]);
#pragma unroll
    for (int r = 0; r < kGemvMaxRows; ++r)
      if (r < n) acc[r] = fmaf(wi, __half2float(x[static_cast<std::size_t>(r) * in + i]), acc[r]);
  }
#pragma unroll
  for (int r = 0; r < kGemvMaxRows; ++r) {
    if (r < n) {
      float* dst = y + static_cast<std::size_t>(r) * out + row;
      *dst = accumulate ? *dst + acc[r] : acc[r];
    }
  }
}

}  // namespace

void validate(const GemvArgs& a) {
  require_pointer(a.W, "W");
  require_pointer(a.x, "x");
  require_pointer(a.y, "y");
  require(a.n >= 1 && a.n <= kGemvMaxRows, "n", a.n, "must be in [1, kGemvMaxRows = 8] (use cuBLAS for more rows)");
  require(a.in >= 8 && a.in % 8 == 0, "in", a.in, "must be a positive multiple of 8 (16-byte rows)");
  require(a.out >= 1, "out", a.out, "must be >= 1");
}

/// Version 1: one thread per output row, uncoalesced reads of W.
void gemv_01_naive(const GemvArgs& a, cudaStream_t stream) {
  validate(a);
  const int blocks = (a.out + kThreads - 1) / kThreads;
  gemv_naive_kernel<<<blocks, kThreads, 0, stream>>>(a.W, a.x, a.y, a.n, a.in, a.out, a.accumulate);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::cuda
