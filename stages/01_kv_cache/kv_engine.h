// kv_engine.h: stage 01's engine. Batch 1, fp32, with a KV cache: the prompt is run once
// (prefill), then each new token is one pass of a single token against the cache (decode).
// Generating n tokens costs O(n) token-passes instead of stage 00's O(n^2).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "common/engine.h"
#include "common/forward.h"
#include "common/model_weights.h"
#include "kv_cache.h"

namespace llm::stage01 {

/// Runs `tokens` as the next positions of the cached sequence (cache.length() onward), appending
/// their K/V to the cache. Returns the logits of the last row [1, vocab], or of every row
/// [n, vocab] when all_rows. Prefill is one call with the whole prompt; decode is one call per token.
std::vector<float> extend(const ModelWeights& w, KvCache& cache, std::span<const int> tokens, bool all_rows,
                          ForwardScratch& scratch);

/// Stage 01's Engine: requests one after another, each with a cache reserved for its prompt
/// plus its max_new_tokens.
class KvCacheEngine : public Engine {
 public:
  /// Keeps a reference to the weights; they must outlive the engine.
  KvCacheEngine(const ModelWeights& weights, std::vector<int> stop_ids);
  std::vector<float> logits(const std::vector<int>& tokens) override;
  std::vector<RequestResult> run(const std::vector<Request>& requests, const TokenCallback& on_token) override;
  EngineStats stats() const override { return stats_; }

 private:
  KvCache& cache_for(int tokens);

  const ModelWeights& w_;
  std::vector<int> stop_ids_;
  std::unique_ptr<KvCache> cache_;
  ForwardScratch scratch_;
  EngineStats stats_;
};

}  // namespace llm::stage01
