// backend.h: choosing where stage 04's steps run. The CUDA backend exists only in a build that
// found nvcc and only works where a GPU is present; everything here is callable from plain C++
// either way, so the executable and the bench need no CUDA headers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/model_weights.h"
#include "kernels/cpu/attention.h"  // KvCodeType
#include "stages/03_continuous_batching/step_executor.h"
#include "step_recipe.h"

namespace llm::stage04 {

/// Settings of the CUDA backend.
struct CudaOptions {
  /// Share of the device memory free at start-up this engine may use (weights, activations and
  /// the KV pool together); the KV pool gets what the weights and activations leave.
  double memory_fraction = 0.90;
  bool cuda_graphs = true;  ///< replay decode steps from captured CUDA graphs
  int max_running = 16;     ///< most sequences in a step (sizes the activations and graphs)
  int token_budget = 256;   ///< most rows in a step
  int block_size = 16;      ///< tokens per KV block
  /// Most KV blocks worth having (enough for max_running sequences of the whole context); the
  /// pool is the smaller of this and what fits.
  int max_useful_blocks = 0;
  /// How the K/V cache stores each value: f16 (stage 04), or int8 / fp8_e4m3 codes with an fp32
  /// scale per (token, KV head) (stage 05's --kv-cache int8|fp8). f32 is refused. The memory plan
  /// sizes the pool in blocks of this format (memory_plan.h's kv_block_bytes).
  cpu::KvCodeType kv_cache = cpu::KvCodeType::f16;
};

/// Why the CUDA backend cannot run here ("" when it can): a build without nvcc, or no device.
std::string cuda_unavailable_reason();

/// The CUDA backend for a loaded model (weights converted to fp16 and uploaded) or, with
/// `weights` having no tensors (only a config), for random weights generated on the device
/// (synthetic models for speed measurements). Sets *num_blocks to the KV pool size that fits.
/// Throws llm::Error with the sizes when the model does not fit.
std::unique_ptr<stage03::StepExecutor> make_cuda_executor(const ModelWeights& weights, const CudaOptions& options,
                                                          int* num_blocks);

/// The device name ("" without one), for the metrics.
std::string cuda_device_name();

/// Counts of how a CUDA executor ran its steps (false when `exec` is not the CUDA executor):
/// graph launches (replays, the first launch after a capture included), graph captures, and
/// steps run eagerly (kernel by kernel).
bool cuda_step_counts(const stage03::StepExecutor& exec, long long* graph_launches, long long* graph_captures,
                      long long* eager_steps);

}  // namespace llm::stage04

namespace llm::stage04 {

/// Runs `step` on a stage 04 executor (CPU or CUDA, after begin_run) operation by operation,
/// waiting after each: seconds per operation of the recipe (step_recipe.h), summed over layers.
/// Throws llm::Error for an executor that is not stage 04's.
std::vector<OpTime> profile_step_on(stage03::StepExecutor& exec, const stage03::StepBatch& step);

}  // namespace llm::stage04
