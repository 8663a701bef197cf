// quant_engine.h: stage 05's engine: stage 04's (stage 03's scheduler and paged KV, steps run by
// the step recipe) with the weights resident in the format --weights asks for and a K/V cache in
// fp32, fp16, int8 or fp8 (kv_quant.h). The CPU backend runs every format; the CUDA kernels for them are not built yet.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "quant_cpu_ops.h"
#include "stages/04_cuda/gpu_engine.h"

namespace llm::stage05 {

/// Stage 05's settings: stage 04's plus the storage.
struct QuantEngineConfig {
  stage04::GpuEngineConfig stage04;  ///< batching and --backend
  std::string weights = "auto";      ///< --weights
  std::string kv_cache = "f16";      ///< --kv-cache: f32, f16, int8 or fp8 (kv_quant.h)
  std::string matmul = "fused";      ///< --matmul: fused or int8
};

/// Stage 03's engine with the storage named in its stats (EngineStats::weight_storage).
class QuantEngine : public Engine {
 public:
  QuantEngine(std::unique_ptr<stage03::ContinuousBatchEngine> engine, std::string storage, std::size_t weight_bytes);
  std::vector<float> logits(const std::vector<int>& tokens) override { return engine_->logits(tokens); }
  std::vector<RequestResult> run(const std::vector<Request>& requests, const TokenCallback& on_token) override;
  EngineStats stats() const override;
  stage03::ContinuousBatchEngine& inner() { return *engine_; }

 private:
  std::unique_ptr<stage03::ContinuousBatchEngine> engine_;
  std::string storage_;
  std::size_t weight_bytes_;
};

/// What make_quant_engine built.
struct BuiltQuantEngine {
  std::unique_ptr<QuantEngine> engine;
  std::string backend;  ///< "cpu" or "cuda"
  std::string note;     ///< why this backend, and the storage
};

/// Builds the engine for `w` (loaded from `file` when it is a GGUF: --weights auto keeps its
/// blocks; null otherwise). --backend cuda with weights other than f16 is refused (llm::Error:
/// "stage 05's CUDA kernels are not built yet"); auto runs them on the CPU and says why in note;
/// f16 weights with an fp16 KV cache on a GPU run stage 04's CUDA backend. Throws llm::Error for
/// a bad --weights, --kv-cache or --matmul value.
BuiltQuantEngine make_quant_engine(const ModelWeights& w, const GGUFFile* file, std::vector<int> stop_ids,
                                   QuantEngineConfig config);

}  // namespace llm::stage05
