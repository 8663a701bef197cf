// Stage 06: speculative decoding on stage 03's continuous batching. See README.md in this folder.
#include <memory>

#include "common/stage_main.h"
#include "speculative_engine.h"

int main(int argc, char** argv) {
  llm::StageInfo stage{"06_speculative_decoding",
                       "speculative decoding: a cheap proposer guesses k tokens, one target forward verifies them", 16};
  stage.paged_kv = true;
  stage.speculative = true;
  return llm::stage_main(argc, argv, stage, [](const llm::Model& model, const llm::CliOptions& o) {
    return std::unique_ptr<llm::Engine>(llm::stage06::make_speculative_engine(model, o));
  });
}
