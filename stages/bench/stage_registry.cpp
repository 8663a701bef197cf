#include "stage_registry.h"

#include <cstdio>

#include "common/error.h"
#include "common/gguf.h"
#include "stages/00_naive/naive_engine.h"
#include "stages/01_kv_cache/kv_engine.h"
#include "stages/02_static_batching/static_batch_engine.h"
#include "stages/03_continuous_batching/continuous_batch_engine.h"
#include "stages/04_cuda/gpu_engine.h"
#include "stages/05_quantization/kv_quant.h"
#include "stages/05_quantization/quant_engine.h"
#include "stages/06_speculative_decoding/speculative_engine.h"

namespace llm::bench {

namespace {

StageEntry weights_entry(const std::string& weights, const std::string& what) {
  return {"05-" + weights, "05_quantization (" + weights + " weights)", what, true, true, weights, "f16"};
}

StageEntry kv_entry(const std::string& kv, const std::string& what) {
  return {"05-kv-" + kv, "05_quantization (" + kv + " KV cache)", what, true, true, "auto", kv};
}

}  // namespace

const std::vector<StageEntry>& stages() {
  static const std::vector<StageEntry> all = {
      {"00", "00_naive", "baseline: recompute the whole sequence for every token", false, false, "", ""},
      {"01", "01_kv_cache", "KV cache: prefill once, then one token per step", false, false, "", ""},
      {"02", "02_static_batching", "static batching: B requests padded into one lock-step batch", true, false, "", ""},
      {"03", "03_continuous_batching", "continuous batching: join and leave every step; paged KV, prefix cache", true,
       false, "", ""},
      // The same engine with prefix caching off, to measure what the cache saves.
      {"03np", "03_continuous_batching (no prefix cache)", "stage 03 with prefix caching off", true, true, "", ""},
      // Stage 04 runs on the GPU where there is one, else on its CPU backend (the kernels' CPU
      // twins): only when named, so that CPU-only comparisons stay as they are.
      // What it changed, whichever backend ran; the table adds the backend that did.
      {"04", "04_cuda",
       "stage 03's engine with stage 04's step backend (on a GPU: the device kernels, decode steps from CUDA graphs)",
       true, true, "", ""},
      {"04ng", "04_cuda (no CUDA graphs)", "stage 04 launching every kernel of a decode step", true, true, "", ""},
      // Stage 05, one entry per weight format (fp16 K/V, stage 04's), each only when named: what
      // a format buys in speed is read against 05-f32 or stage 01, what it costs in the
      // perplexity column (--ppl-text).
      weights_entry("f32", "stage 04's engine with fp32 weights (4 bytes/weight: the reference)"),
      weights_entry("f16", "fp16 weights (2 bytes/weight): stage 04's storage"),
      weights_entry("q8_0", "Q8_0 weights: int8 in groups of 32 with an fp16 scale (1.06 bytes/weight)"),
      weights_entry("q4_1", "Q4_1 weights: 4-bit in groups of 32, fp16 scale and minimum (0.625 bytes/weight)"),
      weights_entry("q4_0", "Q4_0 weights: symmetric 4-bit in groups of 32, fp16 scale (0.5625 bytes/weight)"),
      weights_entry("fp8", "FP8 E4M3 weights with an fp32 scale per row (1 byte/weight)"),
      weights_entry("auto", "the weights as the file stores them (a quantized GGUF's blocks, not re-quantized)"),
      // Stage 05, one entry per K/V format (weights as stored): with --kv-budget-mib every pool
      // gets the same bytes, so a smaller format holds more tokens.
      kv_entry("f32", "K/V cache in fp32 (4 bytes per value)"),
      kv_entry("f16", "K/V cache in fp16 (2 bytes per value)"),
      kv_entry("int8", "K/V cache in int8 with a scale per token and KV head (1 byte per value)"),
      kv_entry("fp8", "K/V cache in FP8 E4M3 with a scale per token and KV head (1 byte per value)"),
      // Stage 06 (stage 03's engine and pool, greedy tokens unchanged), only when named: the
      // proposers that need no second file.
      {"06-ngram", "06_speculative_decoding (prompt lookup, k 4)",
       "speculative decoding: prompt lookup proposes 4 tokens, one forward verifies them", true, true, "", ""},
      {"06-ngram-auto", "06_speculative_decoding (prompt lookup, adaptive k)",
       "speculative decoding with k chosen per step from measured tokens/s", true, true, "", ""},
      {"06-layerskip", "06_speculative_decoding (layer skip, k 4)",
       "speculative decoding: the target's first half of the layers proposes 4 tokens", true, true, "", ""},
  };
  return all;
}

const StageEntry& find_stage(const std::string& key) {
  std::string known;
  for (const auto& s : stages()) {
    if (s.id == key || s.name == key) return s;
    known += (known.empty() ? "" : ", ") + s.id;
  }
  throw Error("--stages: unknown stage '" + key + "' (known: " + known + ")");
}

KvPlan kv_plan(const StageEntry& stage, const ModelConfig& c, std::size_t kv_budget_bytes) {
  KvPlan p;
  if (stage.id.rfind("03", 0) == 0 || stage.id.rfind("06", 0) == 0) {
    p.format = "f32";
  } else if (stage.id.rfind("04", 0) == 0) {
    p.format = "f16";  // both of stage 04's backends store fp16 K/V
  } else if (stage.id.rfind("05", 0) == 0) {
    p.format = stage.kv_cache;
  } else {
    return p;  // stages 00-02 have no paged pool
  }
  const bool five = stage.id.rfind("05", 0) == 0;
  p.element_bytes = five ? stage05::kv_element_bytes(p.format) : p.format == "f32" ? 4 : 2;
  const std::size_t scale_bytes = five ? stage05::kv_scale_bytes(p.format) : 0;  // per token, KV head, K or V
  p.bytes_per_token =
      2 * static_cast<std::size_t>(c.n_layers) *
      (static_cast<std::size_t>(c.kv_dim()) * p.element_bytes + static_cast<std::size_t>(c.n_kv_heads) * scale_bytes);
  p.block_size = stage03::ContinuousBatchConfig{}.block_size;
  if (kv_budget_bytes > 0) {
    const std::size_t block_bytes = p.bytes_per_token * static_cast<std::size_t>(p.block_size);
    const std::size_t blocks = kv_budget_bytes / block_bytes;
    if (blocks < 1)
      throw Error("--kv-budget-mib: " + std::to_string(kv_budget_bytes) + " bytes is less than one KV block of stage " +
                  stage.id + " (" + std::to_string(p.block_size) + " tokens of " + std::to_string(p.bytes_per_token) +
                  " bytes = " + std::to_string(block_bytes) + " bytes)");
    if (blocks > (1u << 30)) throw Error("--kv-budget-mib: more than 2^30 KV blocks of stage " + stage.id);
    p.blocks = static_cast<int>(blocks);
  }
  return p;
}

BuiltEngine make_engine(const StageEntry& stage, const Model& model, const EngineOptions& options) {
  BuiltEngine out;
  const std::vector<int> stops = options.stop_tokens ? model.tokenizer->stop_ids() : std::vector<int>{};
  const int batch = options.batch;
  out.kv = kv_plan(stage, model.config(), options.kv_budget_bytes);
  if (stage.id == "00") {
    out.engine = std::make_unique<stage00::NaiveEngine>(model.weights, stops);
  } else if (stage.id == "01") {
    out.engine = std::make_unique<stage01::KvCacheEngine>(model.weights, stops);
  } else if (stage.id == "02") {
    out.engine = std::make_unique<stage02::StaticBatchEngine>(model.weights, stops, batch);
  } else if (stage.id == "03" || stage.id == "03np") {
    stage03::ContinuousBatchConfig config;  // the stage's defaults, as its executable has them
    config.scheduler.max_running = batch;
    config.scheduler.prefix_caching = stage.id == "03";
    config.num_blocks = out.kv.blocks;
    auto engine = std::make_unique<stage03::ContinuousBatchEngine>(model.weights, stops, config);
    out.paged = engine.get();
    out.engine = std::move(engine);
  } else if (stage.id == "04" || stage.id == "04ng") {
    stage04::GpuEngineConfig config;
    config.batching.scheduler.max_running = batch;
    config.batching.num_blocks = out.kv.blocks;
    config.cuda.cuda_graphs = stage.id == "04";
    stage04::GpuEngine built = stage04::make_gpu_engine(model.weights, stops, config);
    std::fprintf(stderr, "[bench] stage %s: %s backend (%s)\n", stage.id.c_str(), built.backend.c_str(),
                 built.note.c_str());
    out.backend = built.backend + (built.note.empty() ? "" : " (" + built.note + ")");
    out.paged = built.engine.get();
    out.engine = std::move(built.engine);
  } else if (stage.id.rfind("05", 0) == 0) {
    stage05::QuantEngineConfig config;
    config.stage04.batching.scheduler.max_running = batch;
    config.stage04.batching.num_blocks = out.kv.blocks;
    config.weights = stage.weights;
    config.kv_cache = stage.kv_cache;
    out.matmul = config.matmul;  // the stage's default, as its executable runs it
    // --weights auto keeps a quantized GGUF's blocks: the file is read again for them.
    std::unique_ptr<GGUFFile> file;
    if (model.format == "gguf") file = std::make_unique<GGUFFile>(model.path);
    stage05::BuiltQuantEngine built = stage05::make_quant_engine(model.weights, file.get(), stops, config);
    std::fprintf(stderr, "[bench] stage %s: %s backend (%s); weights %s\n", stage.id.c_str(), built.backend.c_str(),
                 built.note.c_str(), built.engine->stats().weight_storage.c_str());
    out.backend = built.backend + (built.note.empty() ? "" : " (" + built.note + ")");
    out.paged = &built.engine->inner();
    out.engine = std::move(built.engine);
  } else if (stage.id.rfind("06", 0) == 0) {
    stage06::SpeculativeConfig config;
    config.batching.scheduler.max_running = batch;
    config.batching.num_blocks = out.kv.blocks;
    config.adaptive = stage.id == "06-ngram-auto";
    config.k = config.adaptive ? 8 : 4;
    std::unique_ptr<Model> no_draft;
    auto proposer = stage06::make_proposer(stage.id == "06-layerskip" ? "layerskip" : "ngram", model, "", 0, no_draft);
    auto engine = std::make_unique<stage06::SpeculativeEngine>(model.weights, stops, config, std::move(proposer));
    out.paged = &engine->batching();
    out.engine = std::move(engine);
  } else {
    throw Error("no engine for stage " + stage.name);
  }
  return out;
}

}  // namespace llm::bench
