#include "gpu_engine.h"

#include "common/checked.h"
#include "common/error.h"
#include "cpu_ops.h"

namespace llm::stage04 {

std::string cuda_unsupported_model(const ModelConfig& c) {
  if (c.head_dim != 32 && c.head_dim != 64 && c.head_dim != 128)
    return "head_dim " + std::to_string(c.head_dim) + " (the attention kernels take 32, 64 or 128)";
  for (const auto& [name, v] :
       {std::pair<const char*, int>{"dim", c.dim}, {"n_heads x head_dim", c.q_dim()}, {"hidden_dim", c.hidden_dim}})
    if (v % 8 != 0) return std::string(name) + " " + std::to_string(v) + " (the GEMV reads rows 8 fp16 at a time)";
  return "";
}

GpuEngineConfig gpu_engine_config(const CliOptions& o) {
  GpuEngineConfig config;
  config.batching = stage03::continuous_batch_config(o);
  config.backend = o.backend;
  config.cuda.memory_fraction = o.kv_memory_fraction;
  config.cuda.cuda_graphs = o.cuda_graphs;
  return config;
}

GpuEngine make_cuda_engine(const ModelWeights& weights, std::vector<int> stop_ids, GpuEngineConfig config,
                           const CudaExecutorFactory& make_exec) {
  config.cuda.max_running = config.batching.scheduler.max_running;
  config.cuda.token_budget = config.batching.scheduler.token_budget;
  config.cuda.block_size = config.batching.block_size;
  const int per_seq = ceil_div(weights.config.context_length, config.batching.block_size);
  config.cuda.max_useful_blocks =
      checked_mul(config.batching.scheduler.max_running, per_seq, "--batch x blocks per sequence");
  int fits = 0;
  auto exec = make_exec(config.cuda, &fits);
  // --kv-blocks still wins when given (and when it fits).
  if (config.batching.num_blocks == 0 || config.batching.num_blocks > fits) config.batching.num_blocks = fits;
  GpuEngine out;
  out.engine = std::make_unique<stage03::ContinuousBatchEngine>(weights, std::move(stop_ids), config.batching,
                                                                std::move(exec));
  out.backend = "cuda";
  out.note = cuda_device_name();
  return out;
}

GpuEngine make_gpu_engine(const ModelWeights& weights, std::vector<int> stop_ids, GpuEngineConfig config) {
  GpuEngine out;
  std::string why_not = cuda_unavailable_reason();
  if (why_not.empty()) {
    const std::string shape = cuda_unsupported_model(weights.config);
    if (!shape.empty()) why_not = "the CUDA backend cannot run this model: " + shape;
  }
  if (config.backend == "cuda" && !why_not.empty()) throw Error("--backend cuda: " + why_not);
  if (config.backend != "cpu" && why_not.empty())
    return make_cuda_engine(weights, std::move(stop_ids), std::move(config),
                            [&](const CudaOptions& options, int* fits) { return make_cuda_executor(weights, options, fits); });
  out.engine = std::make_unique<stage03::ContinuousBatchEngine>(weights, std::move(stop_ids), config.batching,
                                                                std::make_unique<CpuStepExecutor>(weights));
  out.backend = "cpu";
  out.note = config.backend == "cpu" ? "CPU backend (--backend cpu)" : why_not + "; running the CPU backend";
  return out;
}

}  // namespace llm::stage04
