#include "quant_engine.h"

#include <algorithm>
#include <cstdio>

#include "common/checked.h"
#include "common/error.h"
#include "common/gguf.h"
#include "common/tokenizer.h"
#include "kv_quant.h"
#include "quant_cuda.h"
#include "stages/04_cuda/memory_plan.h"

namespace llm::stage05 {

QuantEngine::QuantEngine(std::unique_ptr<stage03::ContinuousBatchEngine> engine, std::string storage,
                         std::size_t weight_bytes, const stage04::CpuStepExecutor* cpu)
    : engine_(std::move(engine)), storage_(std::move(storage)), weight_bytes_(weight_bytes), cpu_(cpu) {}

std::size_t kv_block_bytes(const ModelConfig& c, const std::string& kv_cache, int block_size) {
  return stage04::kv_block_bytes(c, kv_storage(kv_cache).type, block_size);  // the CUDA memory plan's too
}

int kv_pool_blocks(const ModelConfig& c, const std::string& kv_cache, std::size_t budget, int block_size,
                   int max_running) {
  const std::size_t block_bytes = kv_block_bytes(c, kv_cache, block_size);
  const long full = static_cast<long>(max_running) * ceil_div(c.context_length, block_size);
  const auto cap = static_cast<long>(std::min<std::size_t>(budget / block_bytes, 1u << 30));
  return static_cast<int>(std::max(1L, std::min(full, cap)));
}

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

namespace {

/// "; KV cache int8 on the device: N blocks of B tokens, X MiB (...)": what the CUDA memory plan gave.
std::string cuda_kv_note(const ModelConfig& c, const std::string& kv_cache, int bs, QuantEngine& e) {
  const int blocks = e.inner().num_blocks();
  char buf[256];
  std::snprintf(buf, sizeof buf, "; KV cache %s on the device: %d blocks of %d tokens, %.2f MiB%s", kv_cache.c_str(),
                blocks, bs, static_cast<double>(kv_block_bytes(c, kv_cache, bs)) * blocks / (1024.0 * 1024.0),
                kv_cache == "f16" ? ""
                                  : " (quantized on append, attention_decode 03 for decode, dequantized to fp16 for "
                                    "prefill; not yet run on a GPU)");
  return buf;
}

}  // namespace

BuiltQuantEngine make_quant_engine(const ModelWeights& w, const GGUFFile* file, std::vector<int> stop_ids,
                                   QuantEngineConfig config) {
  if (!valid_weights_mode(config.weights))
    throw Error("--weights " + printable(config.weights) + ": must be auto, f32, f16, q8_0, q4_0, q4_1 or fp8");
  (void)kv_element_bytes(config.kv_cache);  // refuses a bad --kv-cache before any work
  const MatmulKind kind = parse_matmul(config.matmul);
  QuantWeights q = make_quant_weights(w, file, config.weights);
  BuiltQuantEngine out;
  const std::string& backend = config.stage04.backend;
  // Stage 04's CUDA backend stores fp16 weights: exactly --weights f16 (its K/V cache in the
  // --kv-cache format: CudaOptions::kv_cache).
  const bool stage04_storage = q.storage == "f16" || q.storage == "f16 (as stored)";
  config.stage04.cuda.kv_cache = kv_storage(config.kv_cache).type;
  // What the CUDA backend cannot run, decided before any device is asked for (the same answer on
  // every machine): an f32 K/V cache, f32 matrices, a model shape the kernels do not take. An
  // int8 / fp8 K/V cache runs (quantized as it is appended, read by attention_decode 03, dequantized
  // to fp16 for prefill); fp8 K/V needs no FP8 hardware: E4M3 is only storage, converted in registers.
  std::string cuda_refusal;
  if (config.kv_cache == "f32")
    cuda_refusal =
        "--kv-cache f32: the CUDA backend keeps the K/V cache in f16, int8 or fp8 (f32 K/V runs on "
        "--backend cpu only)";
  if (cuda_refusal.empty() && !stage04_storage) {
    const std::string why = cuda_weights_unsupported(q);
    if (!why.empty()) cuda_refusal = "--weights " + config.weights + " (" + q.storage + "): " + why;
  }
  if (cuda_refusal.empty()) {
    const std::string shape = stage04::cuda_unsupported_model(w.config);
    if (!shape.empty()) cuda_refusal = "the CUDA backend cannot run this model: " + shape;
  }
  const std::string no_gpu = stage04::cuda_unavailable_reason();
  if (backend == "cuda" && !cuda_refusal.empty()) throw Error("--backend cuda: " + cuda_refusal);
  if (backend == "cuda" && !no_gpu.empty()) throw Error("--backend cuda: " + no_gpu);
  // What this machine's GPU cannot run (FP8 weights below compute capability 8.9): refused on
  // --backend cuda, the CPU backend on auto, like the refusals above.
  if (backend != "cpu" && no_gpu.empty() && cuda_refusal.empty() && !stage04_storage) {
    const std::string why = cuda_device_refusal(q);
    if (!why.empty()) cuda_refusal = "--weights " + config.weights + " (" + q.storage + "): " + why;
    if (backend == "cuda" && !cuda_refusal.empty()) throw Error("--backend cuda: " + cuda_refusal);
  }
  if (backend != "cpu" && no_gpu.empty() && cuda_refusal.empty()) {
    if (stage04_storage) {  // stage 04 itself
      stage04::GpuEngine g = make_gpu_engine(w, std::move(stop_ids), config.stage04);
      out.engine = std::make_unique<QuantEngine>(std::move(g.engine), "fp16",
                                                 stage04::packed_weight_bytes(w.config, w.output.empty()));
      out.backend = g.backend;
      out.note = g.note + cuda_kv_note(w.config, config.kv_cache, config.stage04.batching.block_size, *out.engine);
      return out;
    }
    // Stage 04's executor and step recipe with the quantized matrices (quant_cuda.h).
    stage04::GpuEngine g = stage04::make_cuda_engine(
        w, std::move(stop_ids), config.stage04,
        [&](const stage04::CudaOptions& options, int* fits) { return make_quant_cuda_executor(w, q, options, fits); });
    char mib[96];
    std::snprintf(mib, sizeof mib, "; %.2f MiB of weights on the device",
                  static_cast<double>(cuda_weight_bytes(q)) / (1024.0 * 1024.0));
    out.note = g.note + mib + " (quantized GEMV for decode, dequantize + cuBLAS for prefill; not yet run on a GPU)";
    out.engine = std::make_unique<QuantEngine>(std::move(g.engine), q.storage, q.bytes());
    out.note += cuda_kv_note(w.config, config.kv_cache, config.stage04.batching.block_size, *out.engine);
    out.backend = g.backend;
    return out;
  }
  const std::string storage = q.storage;
  const std::size_t bytes = q.bytes();
  // The pool at the format's own bytes: the same budget holds more int8/fp8 blocks.
  auto& batching = config.stage04.batching;
  if (batching.num_blocks == 0 && batching.block_size >= 1)
    batching.num_blocks = kv_pool_blocks(w.config, config.kv_cache, config.kv_pool_bytes, batching.block_size,
                                         batching.scheduler.max_running);
  out.note = backend == "cpu"     ? "CPU backend (--backend cpu)"
             : !no_gpu.empty()    ? no_gpu + "; running the CPU backend"
                                  : cuda_refusal + "; running the CPU backend";
  auto exec = make_quant_cpu_executor(w, std::move(q), kind, config.kv_cache);
  const stage04::CpuStepExecutor* cpu = exec.get();
  auto engine = std::make_unique<stage03::ContinuousBatchEngine>(w, std::move(stop_ids), batching, std::move(exec));
  // What the pool holds, in the format's bytes (the metrics print the same as "KV pool").
  char pool[160];
  std::snprintf(pool, sizeof pool, "; KV cache %s: %d blocks of %d tokens, %.2f MiB", config.kv_cache.c_str(),
                engine->num_blocks(), batching.block_size,
                static_cast<double>(kv_block_bytes(w.config, config.kv_cache, batching.block_size)) *
                    engine->num_blocks() / (1024.0 * 1024.0));
  out.note += pool;
  out.engine = std::make_unique<QuantEngine>(std::move(engine), storage, bytes, cpu);
  out.backend = "cpu";
  return out;
}

QuantEngineConfig quant_engine_config(const CliOptions& o) {
  QuantEngineConfig config;
  config.stage04 = stage04::gpu_engine_config(o);
  config.weights = o.weights;
  config.kv_cache = o.kv_cache;
  config.matmul = o.matmul;
  return config;
}

BuiltQuantEngine make_quant_engine(const Model& model, const CliOptions& o) {
  // --weights auto reads the blocks as the file stores them: the GGUF again, mapped.
  std::unique_ptr<GGUFFile> file;
  if (model.format == "gguf") file = std::make_unique<GGUFFile>(model.path);
  return make_quant_engine(model.weights, file.get(), model.tokenizer->stop_ids(), quant_engine_config(o));
}

}  // namespace llm::stage05
