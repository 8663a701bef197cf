#include "stage_registry.h"

#include <cstdio>

#include "common/error.h"
#include "stages/00_naive/naive_engine.h"
#include "stages/01_kv_cache/kv_engine.h"
#include "stages/02_static_batching/static_batch_engine.h"
#include "stages/03_continuous_batching/continuous_batch_engine.h"
#include "stages/04_cuda/gpu_engine.h"

namespace llm::bench {

const std::vector<StageEntry>& stages() {
  static const std::vector<StageEntry> all = {
      {"00", "00_naive", "baseline: recompute the whole sequence for every token", false},
      {"01", "01_kv_cache", "KV cache: prefill once, then one token per step", false},
      {"02", "02_static_batching", "static batching: B requests padded into one lock-step batch", true},
      {"03", "03_continuous_batching", "continuous batching: join and leave every step; paged KV, prefix cache", true},
      // The same engine with prefix caching off, to measure what the cache saves.
      {"03np", "03_continuous_batching (no prefix cache)", "stage 03 with prefix caching off", true, true},
      // Stage 04 runs on the GPU where there is one, else on its CPU backend (the kernels' CPU
      // twins): only when named, so that CPU-only comparisons stay as they are.
      // What it changed, whichever backend ran; the table adds the backend that did.
      {"04", "04_cuda",
       "stage 03's engine with stage 04's step backend (on a GPU: the device kernels, decode steps from CUDA graphs)",
       true, true},
      {"04ng", "04_cuda (no CUDA graphs)", "stage 04 launching every kernel of a decode step", true, true},
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

std::unique_ptr<Engine> make_engine(const StageEntry& stage, const Model& model, int batch, bool stop_tokens,
                                    std::string* backend) {
  if (backend) *backend = "cpu";
  const std::vector<int> stops = stop_tokens ? model.tokenizer->stop_ids() : std::vector<int>{};
  if (stage.id == "00") return std::make_unique<stage00::NaiveEngine>(model.weights, stops);
  if (stage.id == "01") return std::make_unique<stage01::KvCacheEngine>(model.weights, stops);
  if (stage.id == "02") return std::make_unique<stage02::StaticBatchEngine>(model.weights, stops, batch);
  if (stage.id == "03" || stage.id == "03np") {
    stage03::ContinuousBatchConfig config;  // the stage's defaults, as its executable has them
    config.scheduler.max_running = batch;
    config.scheduler.prefix_caching = stage.id == "03";
    return std::make_unique<stage03::ContinuousBatchEngine>(model.weights, stops, config);
  }
  if (stage.id == "04" || stage.id == "04ng") {
    stage04::GpuEngineConfig config;
    config.batching.scheduler.max_running = batch;
    config.cuda.cuda_graphs = stage.id == "04";
    stage04::GpuEngine built = stage04::make_gpu_engine(model.weights, stops, config);
    std::fprintf(stderr, "[bench] stage %s: %s backend (%s)\n", stage.id.c_str(), built.backend.c_str(),
                 built.note.c_str());
    if (backend) *backend = built.backend + (built.note.empty() ? "" : " (" + built.note + ")");
    return std::move(built.engine);
  }
  throw Error("no engine for stage " + stage.name);
}

}  // namespace llm::bench
