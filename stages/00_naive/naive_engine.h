// naive_engine.h: stage 00's engine. Batch 1, fp32, no cache: to produce token t+1 it runs the
// whole sequence 0..t through the model again, so generating n tokens costs O(n^2) token-passes.
#pragma once

#include <vector>

#include "common/engine.h"
#include "common/model_weights.h"

namespace llm::stage00 {

/// Runs the Llama forward pass over `tokens` (positions 0..n-1) and returns logits:
/// [n, vocab] when all_positions, else only the last row [1, vocab].
std::vector<float> forward(const ModelWeights& w, const std::vector<int>& tokens, bool all_positions);

/// Stage 00's Engine: requests one after another, each by recomputing the whole sequence.
class NaiveEngine : public Engine {
 public:
  /// Keeps references to the weights and the stop tokens; both must outlive the engine.
  NaiveEngine(const ModelWeights& weights, std::vector<int> stop_ids);
  std::vector<float> logits(const std::vector<int>& tokens) override;
  std::vector<RequestResult> run(const std::vector<Request>& requests, const TokenCallback& on_token) override;

 private:
  const ModelWeights& w_;
  std::vector<int> stop_ids_;
};

}  // namespace llm::stage00
