// Stage 02: static batching. See README.md in this folder.
#include "common/stage_main.h"
#include "static_batch_engine.h"

int main(int argc, char** argv) {
  llm::StageInfo stage{"02_static_batching",
                       "static batching: up to --batch requests padded into one batch that decodes in lock step", 16};
  stage.rejects_requests = true;
  return llm::stage_main(argc, argv, stage, [](const llm::Model& model, const llm::CliOptions& o) {
    return std::make_unique<llm::stage02::StaticBatchEngine>(model.weights, model.tokenizer->stop_ids(), o.batch);
  });
}
