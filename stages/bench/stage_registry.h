// stage_registry.h: the stages the bench can run, by name, with what each one changed, and how
// their engines are built (the KV pool from a byte budget, stage 05's storage).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "common/engine.h"
#include "common/model_weights.h"

namespace llm::stage03 {
class ContinuousBatchEngine;
}

namespace llm::bench {

struct StageEntry {
  std::string id;        ///< "00", "01", ..., "05-q4_0", "05-kv-int8"
  std::string name;      ///< "00_naive", "05_quantization (q4_0 weights)"
  std::string what;      ///< what it changed, one line
  bool batches;          ///< takes --batch
  bool variant = false;  ///< a stage run with a feature off (or one of stage 05's formats): only when named in --stages
  std::string weights;   ///< stage 05: --weights ("" for the other stages)
  std::string kv_cache;  ///< stage 05: --kv-cache ("" for the other stages)
};

/// Every stage that exists, in order, and its variants.
const std::vector<StageEntry>& stages();
/// The entry for an id ("01") or name ("01_kv_cache"); throws llm::Error naming the known ones.
const StageEntry& find_stage(const std::string& id_or_name);

/// How the bench wants an engine built.
struct EngineOptions {
  int batch = 16;           ///< rows per step of the batching stages (ignored by batch-1 stages)
  bool stop_tokens = true;  ///< without them, requests run to their max_new_tokens
  /// The paged stages' (03 on) KV pool: as many blocks as this many bytes hold in the stage's
  /// own K/V format (kv_plan); 0 = the stage's default pool.
  std::size_t kv_budget_bytes = 0;
};

/// The K/V storage of a stage and, under a byte budget, the pool it gets.
struct KvPlan {
  std::string format;             ///< "f32", "f16", "int8", "fp8"; "" for stages without a paged pool
  std::size_t element_bytes = 0;  ///< bytes per stored K/V value (the pool's books)
  /// Bytes one token costs: 2 (K, V) x layers x (kv_dim x element_bytes + n_kv_heads x the
  /// format's scale bytes: an fp32 scale per KV head for int8/fp8, kv_quant.h), as stage 05's pool
  /// counts them: the budget pays for the scales too.
  std::size_t bytes_per_token = 0;
  int block_size = 0;  ///< tokens per block
  int blocks = 0;      ///< under a budget: floor(budget / (bytes_per_token * block_size)); 0 = the stage's default
};

/// What make_engine built.
struct BuiltEngine {
  std::unique_ptr<Engine> engine;
  /// Where its steps run: "cpu" for stages 00-03; stage 04/05's backend and why ("cpu (no CUDA
  /// device ...)").
  std::string backend = "cpu";
  /// The paged engine inside (stages 03 on, for its step hook: running sequences per step);
  /// null for stages 00-02.
  stage03::ContinuousBatchEngine* paged = nullptr;
  KvPlan kv;
  /// Stage 05: its --matmul, the stage's default (QuantEngineConfig); "" for the other stages.
  std::string matmul;
};

/// The K/V format and, for a budget (bytes, 0 = none), the blocks of `stage` on a model of
/// config `c`. Throws llm::Error naming --kv-budget-mib when the budget holds no whole block.
KvPlan kv_plan(const StageEntry& stage, const ModelConfig& c, std::size_t kv_budget_bytes);

/// The stage's engine for a model. Stage 05 re-reads a GGUF model's file for --weights auto (its
/// blocks as stored).
BuiltEngine make_engine(const StageEntry& stage, const Model& model, const EngineOptions& options);

}  // namespace llm::bench
