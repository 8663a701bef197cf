// gpu_engine.h: stage 04's engine: stage 03's continuous-batching engine (scheduler, paged
// pool bookkeeping, sampling on the host) with its steps run by this stage's backend: on the
// GPU (CUDA), or by the CPU twin of the same step (CpuStepExecutor).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "stages/03_continuous_batching/continuous_batch_engine.h"

namespace llm::stage04 {

/// Stage 04's settings: stage 03's plus where to run.
struct GpuEngineConfig {
  stage03::ContinuousBatchConfig batching;
  std::string backend = "auto";  ///< auto, cuda or cpu
  CudaOptions cuda;
};

/// Stage 04's settings from a command line: stage 03's (continuous_batch_config) plus --backend,
/// --kv-memory-fraction and --no-cuda-graphs.
GpuEngineConfig gpu_engine_config(const CliOptions& o);

/// What make_gpu_engine built.
struct GpuEngine {
  std::unique_ptr<stage03::ContinuousBatchEngine> engine;
  std::string backend;  ///< "cuda" or "cpu"
  std::string note;     ///< why it fell back to the CPU, or the device's name
};

/// Why the CUDA kernels cannot run a model of this shape ("" when they can): head_dim must be
/// 32, 64 or 128 and the matmul widths multiples of 8.
std::string cuda_unsupported_model(const ModelConfig& c);

/// Builds the engine. With backend "auto" and no usable GPU it falls back to the CPU backend
/// and says why in `note` (also for a model the kernels cannot run); with "cuda" it throws
/// llm::Error with the reason instead.
GpuEngine make_gpu_engine(const ModelWeights& weights, std::vector<int> stop_ids, GpuEngineConfig config);

/// Builds a CUDA executor for these options and sets *num_blocks to the KV pool that fits it.
using CudaExecutorFactory = std::function<std::unique_ptr<stage03::StepExecutor>(const CudaOptions&, int* num_blocks)>;

/// Stage 03's engine on a CUDA executor from `make_exec` (make_gpu_engine: stage 04's fp16 one;
/// stage 05: its quantized one): the CUDA options follow the batching settings (most running
/// sequences, token budget, block size, blocks worth having), and the pool is --kv-blocks when
/// given and it fits, else what fits. backend "cuda", note the device's name.
GpuEngine make_cuda_engine(const ModelWeights& weights, std::vector<int> stop_ids, GpuEngineConfig config,
                           const CudaExecutorFactory& make_exec);

}  // namespace llm::stage04
