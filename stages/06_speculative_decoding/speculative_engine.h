// speculative_engine.h: stage 06's engine: stage 03's continuous batching engine with a
// SpeculativeDecoder plugged in as its decode policy. With no proposer it is stage 03 exactly.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/cli.h"
#include "common/engine.h"
#include "common/model_weights.h"
#include "proposer.h"
#include "speculative_decoder.h"
#include "stages/03_continuous_batching/continuous_batch_engine.h"

namespace llm::stage06 {

/// Stage 06's settings.
struct SpeculativeConfig {
  stage03::ContinuousBatchConfig batching;
  int k = 4;                             ///< proposals per sequence and step (--spec-k)
  AcceptRule rule = accept_rejection_sampling;  ///< the sampling verifier (tests swap in wrong ones)
  bool adaptive = false;                 ///< k is the largest; AdaptiveK picks 0..k per step (--spec-k auto)
};

/// Stage 06's Engine.
class SpeculativeEngine : public Engine {
 public:
  /// Keeps a reference to the target's weights. proposer null: no speculation (stage 03).
  SpeculativeEngine(const ModelWeights& target, std::vector<int> stop_ids, SpeculativeConfig config,
                    std::unique_ptr<Proposer> proposer);
  std::vector<float> logits(const std::vector<int>& tokens) override { return engine_.logits(tokens); }
  std::vector<RequestResult> run(const std::vector<Request>& requests, const TokenCallback& on_token) override;
  /// Stage 03's counters plus stage_figures: acceptance rate, tokens per verify step, target
  /// forwards per generated token, draft share of the run's time.
  EngineStats stats() const override;

  const SpeculationStats& speculation() const;
  /// The engine underneath (its step hook, blocks left in use).
  stage03::ContinuousBatchEngine& batching() { return engine_; }

 private:
  stage03::ContinuousBatchEngine engine_;
  std::unique_ptr<Proposer> proposer_;
  std::unique_ptr<SpeculativeDecoder> decoder_;
  SpeculationStats none_;
  double run_seconds_ = 0.0;
  long generated_ = 0;
};

/// The proposer a command line names: "none" (null), "draft" (loads draft_path, refused unless
/// it fits the target: check_draft_fits), "ngram", "layerskip" (draft_layers; 0 = half the
/// target's layers). `draft` receives the loaded draft model, which must outlive the proposer.
std::unique_ptr<Proposer> make_proposer(const std::string& method, const Model& target, const std::string& draft_path,
                                        int draft_layers, std::unique_ptr<Model>& draft);

/// Stage 06's settings from its command line: stage 03's (stage03::continuous_batch_config),
/// --spec-k (a number, or auto: adaptive).
SpeculativeConfig speculative_config(const CliOptions& o);

/// The engine stage06_speculative_decoding runs (and stage08_serving --engine 06) for `model`
/// and `o`: the proposer --speculate names (make_proposer), which owns the draft model it loaded.
std::unique_ptr<SpeculativeEngine> make_speculative_engine(const Model& model, const CliOptions& o);

}  // namespace llm::stage06
