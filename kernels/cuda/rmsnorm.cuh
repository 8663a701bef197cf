// rmsnorm.cuh: RMSNorm on the GPU. CPU twin: llm::cpu::rmsnorm (kernels/cpu/ops.h).
//
// One block per row: each thread strides over the row accumulating sum(x^2) in fp32, a
// shared-memory tree reduction, then each thread scales its elements. A row of a Llama model
// (2-16 KiB) is read once from memory for the sum and once more from L1/L2 for the scaling.
//
// add_rmsnorm_to_half fuses the two trips a layer makes around its norm: the residual add
// (x += delta) and the normalisation, which writes the fp16 input of the next matmul directly.
// Unfused that is three kernels and three reads of x; fused, one.
// Check and time: build/kernels/kernel_harness check pointwise / bench pointwise
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace llm::cuda {

/// y[n, dim] = x / sqrt(mean(x^2) + eps) * weight; fp32, device memory (y may alias x).
void rmsnorm(float* y, const float* x, const float* weight, int n, int dim, float eps, cudaStream_t stream = 0);

/// x[n, dim] += delta (when delta is not null), then y = rmsnorm(x) * weight rounded to fp16.
/// x, delta, weight fp32; y fp16 [n, dim]; device memory.
void add_rmsnorm_to_half(__half* y, float* x, const float* delta, const float* weight, int n, int dim, float eps,
                         cudaStream_t stream = 0);

}  // namespace llm::cuda
