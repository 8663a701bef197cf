// gemv.cuh: the decode matrix-vector product, in numbered versions. At decode a step multiplies
// each weight matrix by a handful of rows: every weight is used once per row, so the time is
// the time to read W from memory, and the goal is the copy bandwidth.
//
//   01_naive.cu            one thread per output row reads its row of W element by element:
//                          neighbouring threads read addresses `in` apart (uncoalesced)
//   02_warp_vectorized.cu  one warp per output row, each lane reading 16 bytes (8 fp16) at a
//                          time, consecutive lanes consecutive addresses (coalesced, 512 bytes
//                          per warp load), a warp-shuffle reduction at the end
//
// CPU twin: llm::cpu::matmul on the fp16-rounded values (kernels/cpu/ops.h). Check and time:
//   build/kernels/kernel_harness check gemv
//   build/kernels/kernel_harness bench gemv
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace llm::cuda {

/// Most rows one GEMV launch takes (a decode batch larger than this goes to cuBLAS).
inline constexpr int kGemvMaxRows = 8;

/// y[n, out] = x[n, in] W^T, or y += x W^T with `accumulate` (which fuses the residual add
/// into the output projections). W: [out, in] fp16 row-major (nn.Linear layout), x: [n, in]
/// fp16, y: [n, out] fp32, all device memory, 16-byte aligned; in % 8 == 0; 1 <= n <= 8.
struct GemvArgs {
  const __half* W = nullptr;
  const __half* x = nullptr;
  float* y = nullptr;
  int n = 1;
  int in = 0;
  int out = 0;
  bool accumulate = false;
};

/// Throws std::invalid_argument naming the field when the args are impossible.
void validate(const GemvArgs& a);

void gemv_01_naive(const GemvArgs& a, cudaStream_t stream);
void gemv_02_warp_vectorized(const GemvArgs& a, cudaStream_t stream);

struct GemvVersion {
  int number;
  const char* name;
  void (*run)(const GemvArgs&, cudaStream_t);
};
inline constexpr GemvVersion kGemvVersions[] = {
    {1, "01_naive", gemv_01_naive},
    {2, "02_warp_vectorized", gemv_02_warp_vectorized},
};

}  // namespace llm::cuda
