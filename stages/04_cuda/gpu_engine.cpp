#include "gpu_engine.h"

#include "common/error.h"
#include "cpu_ops.h"

namespace llm::stage04 {

GpuEngine make_gpu_engine(const ModelWeights& weights, std::vector<int> stop_ids, GpuEngineConfig config) {
  GpuEngine out;
  const std::string why_not = cuda_unavailable_reason();
  if (config.backend == "cuda" && !why_not.empty()) throw Error("--backend cuda: " + why_not);
  if (config.backend != "cpu" && why_not.empty()) {
    config.cuda.max_running = config.batching.scheduler.max_running;
    config.cuda.token_budget = config.batching.scheduler.token_budget;
    config.cuda.block_size = config.batching.block_size;
    const int per_seq = (weights.config.context_length + config.batching.block_size - 1) / config.batching.block_size;
    config.cuda.max_useful_blocks = config.batching.scheduler.max_running * per_seq;
    int fits = 0;
    auto exec = make_cuda_executor(weights, config.cuda, &fits);
    // --kv-blocks still wins when given (and when it fits).
    if (config.batching.num_blocks == 0 || config.batching.num_blocks > fits) config.batching.num_blocks = fits;
    out.engine = std::make_unique<stage03::ContinuousBatchEngine>(weights, std::move(stop_ids), config.batching,
                                                                  std::move(exec));
    out.backend = "cuda";
    out.note = cuda_device_name();
    return out;
  }
  out.engine = std::make_unique<stage03::ContinuousBatchEngine>(weights, std::move(stop_ids), config.batching,
                                                                std::make_unique<CpuStepExecutor>(weights));
  out.backend = "cpu";
  out.note = config.backend == "cpu" ? "CPU backend (--backend cpu)" : "no GPU: " + why_not + "; running the CPU backend";
  return out;
}

}  // namespace llm::stage04
