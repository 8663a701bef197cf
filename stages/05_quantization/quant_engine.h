// quant_engine.h: stage 05's engine: stage 04's (stage 03's scheduler and paged KV, steps run by
// the step recipe) with the weights resident in the format --weights asks for and a K/V cache
// stored in fp32, fp16, int8 or fp8 (kv_quant.h). The CPU backend runs every format; the CUDA backend
// (quant_cuda.h, not yet run on a GPU) runs f16, q8_0, q4_0, q4_1 and fp8 weights with an f16, int8 or
// fp8 K/V cache (the same codes and scales as the CPU's; its memory plan sizes the pool in the
// format's own blocks).
// Without --kv-blocks, the pool gets as many blocks as kv_pool_bytes holds at the K/V format's
// own size (scales included), so int8/fp8 hold about 2x the tokens of f16 in the same bytes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/cli.h"
#include "common/model_weights.h"
#include "quant_cpu_ops.h"
#include "stages/04_cuda/gpu_engine.h"

namespace llm::stage05 {

/// Stage 05's settings: stage 04's plus the storage.
struct QuantEngineConfig {
  stage04::GpuEngineConfig stage04;  ///< batching and --backend
  std::string weights = "auto";      ///< --weights
  std::string kv_cache = "f16";      ///< --kv-cache: f32, f16, int8 or fp8 (kv_quant.h)
  std::string matmul = "auto";       ///< --matmul: auto (the fastest here), fused or int8
  /// The K/V pool's byte budget when stage04.batching.num_blocks is 0 (CPU backend): blocks =
  /// min(budget / bytes of a block in the --kv-cache format, max_running full contexts).
  std::size_t kv_pool_bytes = stage03::ContinuousBatchConfig::kDefaultPoolBytes;
};

/// Bytes of one K/V block in format `kv_cache` (kv_quant.h), as BlockPool::bytes_per_block counts
/// them: 2 (K, V) x layers x block_size x (kv_dim x code bytes + n_kv_heads x scale bytes).
std::size_t kv_block_bytes(const ModelConfig& c, const std::string& kv_cache, int block_size);
/// Blocks of a K/V pool of `budget` bytes in format `kv_cache`, at most max_running sequences of
/// the full context, at least 1.
int kv_pool_blocks(const ModelConfig& c, const std::string& kv_cache, std::size_t budget, int block_size,
                   int max_running);

/// Stage 03's engine with the storage named in its stats (EngineStats::weight_storage).
class QuantEngine : public Engine {
 public:
  /// `cpu` (may be null: the CUDA backend) is the executor inside `engine`, for kv_bytes_allocated.
  QuantEngine(std::unique_ptr<stage03::ContinuousBatchEngine> engine, std::string storage, std::size_t weight_bytes,
              const stage04::CpuStepExecutor* cpu = nullptr);
  std::vector<float> logits(const std::vector<int>& tokens) override { return engine_->logits(tokens); }
  std::vector<RequestResult> run(const std::vector<Request>& requests, const TokenCallback& on_token) override;
  EngineStats stats() const override;
  stage03::ContinuousBatchEngine& inner() { return *engine_; }
  /// Bytes the CPU backend's K/V cache really holds (codes and scales) since the last run; it
  /// equals stats().kv_pool_bytes, the pool's books. 0 on the CUDA backend.
  std::size_t kv_bytes_allocated() const { return cpu_ ? cpu_->kv_bytes_allocated() : 0; }

 private:
  std::unique_ptr<stage03::ContinuousBatchEngine> engine_;
  std::string storage_;
  std::size_t weight_bytes_;
  const stage04::CpuStepExecutor* cpu_ = nullptr;
};

/// What make_quant_engine built.
struct BuiltQuantEngine {
  std::unique_ptr<QuantEngine> engine;
  std::string backend;  ///< "cpu" or "cuda"
  std::string note;     ///< why this backend, and the storage
};

/// Builds the engine for `w` (loaded from `file` when it is a GGUF: --weights auto keeps its
/// blocks; null otherwise). On a GPU (--backend auto or cuda): f16 weights run stage 04's CUDA
/// backend as it is; q8_0, q4_0, q4_1 and fp8 (mixed with f16) run it with the quantized matrices
/// of quant_cuda.h; either with the K/V cache in --kv-cache's format (f16, int8 or fp8:
/// CudaOptions::kv_cache). --backend cuda refuses (llm::Error naming the flag and the value,
/// before any device is asked for) an f32 --kv-cache, f32 matrices and shapes the kernels cannot
/// take, and (asking the device) FP8 weights on a GPU without FP8 conversions (compute capability
/// below 8.9); auto runs those on the CPU and says why in note. Throws llm::Error for a
/// bad --weights, --kv-cache or --matmul value.
BuiltQuantEngine make_quant_engine(const ModelWeights& w, const GGUFFile* file, std::vector<int> stop_ids,
                                   QuantEngineConfig config);

/// Stage 05's settings from its command line: stage 04's (stage04::gpu_engine_config) and
/// --weights, --kv-cache, --matmul.
QuantEngineConfig quant_engine_config(const CliOptions& o);

/// The engine stage05_quantization runs (and stage08_serving --engine 05): make_quant_engine for
/// `model` with quant_engine_config(o), the GGUF mapped again for --weights auto's blocks.
BuiltQuantEngine make_quant_engine(const Model& model, const CliOptions& o);

}  // namespace llm::stage05
