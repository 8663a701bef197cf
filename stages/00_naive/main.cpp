// Stage 00: the naive CPU transformer. See README.md in this folder.
#include "common/error.h"
#include "common/stage_main.h"
#include "naive_engine.h"

int main(int argc, char** argv) {
  const llm::StageInfo stage{"00_naive", "naive CPU transformer: recomputes the whole sequence for every new token"};
  return llm::stage_main(argc, argv, stage, [](const llm::Model& model, const llm::CliOptions& o) {
    if (o.batch != 1) {
      throw llm::Error("--batch " + std::to_string(o.batch) +
                       ": stage 00 runs one request at a time (batching arrives in stage 02)");
    }
    return std::make_unique<llm::stage00::NaiveEngine>(model.weights, model.tokenizer->stop_ids());
  });
}
