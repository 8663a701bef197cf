// Stage 00: the naive CPU transformer. See README.md in this folder.
#include "common/stage_main.h"
#include "naive_engine.h"

int main(int argc, char** argv) {
  const llm::StageInfo stage{"00_naive", "naive CPU transformer: recomputes the whole sequence for every new token",
                             /*default_batch=*/1, /*max_batch=*/1};
  return llm::stage_main(argc, argv, stage, [](const llm::Model& model, const llm::CliOptions&) {
    return std::make_unique<llm::stage00::NaiveEngine>(model.weights, model.tokenizer->stop_ids());
  });
}
