// Stage 03: continuous batching over a paged KV cache. See README.md in this folder.
#include "common/stage_main.h"
#include "continuous_batch_engine.h"

int main(int argc, char** argv) {
  llm::StageInfo stage{"03_continuous_batching",
                       "continuous batching: requests join and leave the batch at every step; KV in blocks of a shared pool", 16};
  stage.paged_kv = true;
  return llm::stage_main(argc, argv, stage, [](const llm::Model& model, const llm::CliOptions& o) {
    return std::make_unique<llm::stage03::ContinuousBatchEngine>(model.weights, model.tokenizer->stop_ids(),
                                                                 llm::stage03::continuous_batch_config(o));
  });
}
