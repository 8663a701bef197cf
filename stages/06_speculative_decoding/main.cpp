// Stage 06: speculative decoding on stage 03's continuous batching. See README.md in this folder.
#include <memory>

#include "common/error.h"
#include "common/stage_main.h"
#include "speculative_engine.h"

namespace {

/// The engine with the draft model it may have loaded (which must live as long as the engine).
class EngineWithDraft : public llm::stage06::SpeculativeEngine {
 public:
  EngineWithDraft(std::unique_ptr<llm::Model> draft, const llm::ModelWeights& target, std::vector<int> stops,
                  llm::stage06::SpeculativeConfig config, std::unique_ptr<llm::stage06::Proposer> proposer)
      : SpeculativeEngine(target, std::move(stops), config, std::move(proposer)), draft_(std::move(draft)) {}

 private:
  std::unique_ptr<llm::Model> draft_;
};

}  // namespace

int main(int argc, char** argv) {
  llm::StageInfo stage{"06_speculative_decoding",
                       "speculative decoding: a cheap proposer guesses k tokens, one target forward verifies them", 16};
  stage.paged_kv = true;
  stage.speculative = true;
  return llm::stage_main(argc, argv, stage, [](const llm::Model& model, const llm::CliOptions& o) {
    llm::stage06::SpeculativeConfig config;
    config.batching = llm::stage03::continuous_batch_config(o);
    config.k = o.spec_k;
    config.adaptive = o.spec_k_auto;
    std::unique_ptr<llm::Model> draft;
    auto proposer = llm::stage06::make_proposer(o.speculate, model, o.draft_model, o.draft_layers, draft);
    return std::make_unique<EngineWithDraft>(std::move(draft), model.weights, model.tokenizer->stop_ids(), config,
                                             std::move(proposer));
  });
}
