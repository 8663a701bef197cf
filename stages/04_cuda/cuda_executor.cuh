// cuda_executor.cuh: the CUDA executor (cuda_executor.cu) around any CudaOps: stage 04's fp16
// weights or the matrices a later stage plugs in (stage 05's quantized ones). CUDA code only; plain
// C++ calls backend.h's make_cuda_executor or a stage's own entry point.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

#include "backend.h"
#include "cuda_ops.cuh"

namespace llm::stage04 {

/// What the executor needs to know of a model's weights before anything is allocated.
struct CudaWeightPlan {
  /// Device bytes the weights take (with any buffer of their own, e.g. a dequantization scratch):
  /// planned before the KV pool gets the rest.
  std::size_t device_bytes = 0;
  /// Uploads them and builds the ops (called once, after the plan fits); sets *bytes_per_step to
  /// the bytes a decode step reads.
  std::function<std::unique_ptr<CudaOps>(const CudaOpsLimits& limits, double* bytes_per_step)> make_ops;
};

/// Plans the device memory of a model of shape `c` (what is free x options.memory_fraction: the
/// weights, the activations of the largest step, then as many KV blocks in options.kv_cache's
/// format as fit: fp16, or int8 / fp8 at about half the bytes), builds the
/// ops with plan.make_ops and returns the executor. Sets *num_blocks to the KV pool that fits.
/// Throws llm::Error with the figures when the model does not fit.
std::unique_ptr<stage03::StepExecutor> make_cuda_executor(const ModelConfig& c, const CudaWeightPlan& plan,
                                                          const CudaOptions& options, int* num_blocks);

}  // namespace llm::stage04
