#include "speculative_engine.h"

#include "common/error.h"
#include "common/timer.h"
#include "common/tokenizer.h"
#include "draft_model_proposer.h"
#include "layer_skip_proposer.h"
#include "prompt_lookup_proposer.h"

namespace llm::stage06 {

SpeculativeEngine::SpeculativeEngine(const ModelWeights& target, std::vector<int> stop_ids, SpeculativeConfig config,
                                     std::unique_ptr<Proposer> proposer)
    : engine_(target, std::move(stop_ids), config.batching), proposer_(std::move(proposer)) {
  if (config.k < 0) throw Error("--spec-k " + std::to_string(config.k) + ": must be 0 or more");
  if (proposer_) {
    decoder_ = std::make_unique<SpeculativeDecoder>(*proposer_, target.config.vocab_size, config.k,
                                                    config.batching.scheduler.max_running, config.rule,
                                                    config.adaptive);
    engine_.set_decode_policy(decoder_.get());
  }
}

std::vector<RequestResult> SpeculativeEngine::run(const std::vector<Request>& requests,
                                                  const TokenCallback& on_token) {
  engine_.set_keep_logits(keep_logits_);
  Timer timer;
  std::vector<RequestResult> results = engine_.run(requests, on_token);
  run_seconds_ = timer.seconds();
  generated_ = 0;
  for (const RequestResult& r : results) generated_ += static_cast<long>(r.tokens.size());
  return results;
}

const SpeculationStats& SpeculativeEngine::speculation() const { return decoder_ ? decoder_->stats() : none_; }

EngineStats SpeculativeEngine::stats() const {
  EngineStats e = engine_.stats();
  if (!decoder_) return e;
  const SpeculationStats& s = decoder_->stats();
  e.stage_figures = {
      {"acceptance rate", s.acceptance_rate()},
      {"tokens per verify", s.tokens_per_verify()},
      {"forwards per token", generated_ ? static_cast<double>(s.steps) / static_cast<double>(generated_) : 0.0},
      {"draft time share", run_seconds_ > 0 ? s.draft_seconds / run_seconds_ : 0.0},
  };
  if (decoder_->adaptive()) e.stage_figures.emplace_back("mean k (adaptive)", s.steps ? static_cast<double>(s.k_sum) / s.steps : 0.0);
  return e;
}

std::unique_ptr<Proposer> make_proposer(const std::string& method, const Model& target, const std::string& draft_path,
                                        int draft_layers, std::unique_ptr<Model>& draft) {
  if (method == "none") return nullptr;
  if (method == "ngram") return std::make_unique<PromptLookupProposer>();
  if (method == "layerskip") {
    const int layers = draft_layers > 0 ? draft_layers : std::max(1, target.config().n_layers / 2);
    return std::make_unique<LayerSkipProposer>(target.weights, layers);
  }
  if (method == "draft") {
    if (draft_path.empty()) throw Error("--speculate draft needs --draft-model FILE");
    draft = std::make_unique<Model>(load_model(draft_path));
    check_draft_fits(draft->config(), target.config(), draft_path, draft->tokenizer.get(), target.tokenizer.get());
    return std::make_unique<DraftModelProposer>(draft->weights);
  }
  throw Error("--speculate " + printable(method) + ": must be none, draft, ngram or layerskip");
}

namespace {

/// The engine with the draft model it may have loaded (which must live as long as the engine).
class EngineWithDraft : public SpeculativeEngine {
 public:
  EngineWithDraft(std::unique_ptr<Model> draft, const ModelWeights& target, std::vector<int> stops,
                  SpeculativeConfig config, std::unique_ptr<Proposer> proposer)
      : SpeculativeEngine(target, std::move(stops), config, std::move(proposer)), draft_(std::move(draft)) {}

 private:
  std::unique_ptr<Model> draft_;
};

}  // namespace

SpeculativeConfig speculative_config(const CliOptions& o) {
  SpeculativeConfig config;
  config.batching = stage03::continuous_batch_config(o);
  config.k = o.spec_k;
  config.adaptive = o.spec_k_auto;
  return config;
}

std::unique_ptr<SpeculativeEngine> make_speculative_engine(const Model& model, const CliOptions& o) {
  std::unique_ptr<Model> draft;
  auto proposer = make_proposer(o.speculate, model, o.draft_model, o.draft_layers, draft);
  return std::make_unique<EngineWithDraft>(std::move(draft), model.weights, model.tokenizer->stop_ids(),
                                           speculative_config(o), std::move(proposer));
}

}  // namespace llm::stage06
