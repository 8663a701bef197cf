// stage_registry.h: the stages the bench can run, by name, with what each one changed.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/engine.h"
#include "common/model_weights.h"

namespace llm::bench {

struct StageEntry {
  std::string id;        ///< "00", "01", ...
  std::string name;      ///< "00_naive"
  std::string what;      ///< what it changed, one line
  bool batches;          ///< takes --batch
  bool variant = false;  ///< a stage run with a feature off: only when named in --stages
};

/// Every stage that exists, in order, and its variants.
const std::vector<StageEntry>& stages();
/// The entry for an id ("01") or name ("01_kv_cache"); throws llm::Error naming the known ones.
const StageEntry& find_stage(const std::string& id_or_name);
/// The stage's engine for a model (batch is ignored by batch-1 stages). Without stop_tokens,
/// requests run to their max_new_tokens. `backend` (when given) receives where its steps run:
/// "cpu" for stages 00-03; stage 04's backend and why ("cpu (no CUDA device ...)").
std::unique_ptr<Engine> make_engine(const StageEntry& stage, const Model& model, int batch, bool stop_tokens = true,
                                    std::string* backend = nullptr);

}  // namespace llm::bench
