// rmsnorm.cuh: RMSNorm on the GPU. CPU twin: llm::cpu::rmsnorm (kernels/cpu/ops.h).
//
// version 1 (this file): one block per row, each thread strides over the row accumulating
// sum(x^2) in fp32, a shared-memory tree reduction, then each thread scales its elements.
// Run its check: ctest --test-dir build -R cuda_rmsnorm (skips with code 77 without a GPU).
#pragma once

namespace llm::cuda {

/// y[n, dim] = x / sqrt(mean(x^2) + eps) * weight, all pointers in device memory, fp32.
/// Launches on the default stream; may return before the kernel finishes.
void rmsnorm(float* y, const float* x, const float* weight, int n, int dim, float eps);

}  // namespace llm::cuda
