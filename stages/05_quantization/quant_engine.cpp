#include "quant_engine.h"

#include "common/error.h"
#include "kv_quant.h"

namespace llm::stage05 {

QuantEngine::QuantEngine(std::unique_ptr<stage03::ContinuousBatchEngine> engine, std::string storage,
                         std::size_t weight_bytes)
    : engine_(std::move(engine)), storage_(std::move(storage)), weight_bytes_(weight_bytes) {}

std::vector<RequestResult> QuantEngine::run(const std::vector<Request>& requests, const TokenCallback& on_token) {
  engine_->set_keep_logits(keep_logits_);
  return engine_->run(requests, on_token);
}

EngineStats QuantEngine::stats() const {
  EngineStats s = engine_->stats();
  s.weight_storage = storage_;
  s.weight_bytes = weight_bytes_;
  return s;
}

BuiltQuantEngine make_quant_engine(const ModelWeights& w, const GGUFFile* file, std::vector<int> stop_ids,
                                   QuantEngineConfig config) {
  if (!valid_weights_mode(config.weights))
    throw Error("--weights " + printable(config.weights) + ": must be auto, f32, f16, q8_0, q4_0, q4_1 or fp8");
  (void)kv_element_bytes(config.kv_cache);  // refuses a bad --kv-cache before any work
  const MatmulKind kind = parse_matmul(config.matmul);
  QuantWeights q = make_quant_weights(w, file, config.weights);
  BuiltQuantEngine out;
  const std::string& backend = config.stage04.backend;
  // Stage 04's CUDA backend stores fp16 weights and an fp16 K/V cache: exactly --weights f16.
  const bool stage04_storage = q.storage == "f16" || q.storage == "f16 (as stored)";
  const bool fp16_kv = config.kv_cache == "f16";
  if (backend != "cpu" && stage04::cuda_unavailable_reason().empty()) {
    if (stage04_storage && fp16_kv) {
      stage04::GpuEngine g = make_gpu_engine(w, std::move(stop_ids), config.stage04);
      out.engine = std::make_unique<QuantEngine>(std::move(g.engine), "fp16",
                                                 stage04::packed_weight_bytes(w.config, w.output.empty()));
      out.backend = g.backend;
      out.note = g.note;
      return out;
    }
    if (backend == "cuda")
      throw Error("--backend cuda with --weights " + config.weights + " (" + q.storage + ") and --kv-cache " +
                  config.kv_cache +
                  ": stage 05's CUDA kernels are not built yet (the GPU runs f16 weights with an f16 "
                  "KV cache; use --backend cpu for the others)");
  } else if (backend == "cuda") {
    throw Error("--backend cuda: " + stage04::cuda_unavailable_reason());
  }
  const std::string storage = q.storage;
  const std::size_t bytes = q.bytes();
  out.note = backend == "cpu" ? "CPU backend (--backend cpu)"
             : stage04::cuda_unavailable_reason().empty()
                 ? "stage 05's CUDA kernels are not built yet for " + storage + "; running the CPU backend"
                 : stage04::cuda_unavailable_reason() + "; running the CPU backend";
  auto exec = make_quant_cpu_executor(w, std::move(q), kind, config.kv_cache);
  auto engine = std::make_unique<stage03::ContinuousBatchEngine>(w, std::move(stop_ids), config.stage04.batching,
                                                                 std::move(exec));
  out.engine = std::make_unique<QuantEngine>(std::move(engine), storage, bytes);
  out.backend = "cpu";
  return out;
}

}  // namespace llm::stage05
