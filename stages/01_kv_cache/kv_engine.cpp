#include "kv_engine.h"

#include <algorithm>
#include <numeric>

#include "common/checked.h"
#include "common/error.h"
#include "common/sampler.h"
#include "common/timer.h"

namespace llm::stage01 {

std::vector<float> extend(const ModelWeights& w, KvCache& cache, std::span<const int> tokens, bool all_rows,
                          ForwardScratch& scratch) {
  const int n = static_cast<int>(tokens.size());
  std::vector<int> positions(tokens.size()), rows;
  // BEGIN EXERCISE(prefill-decode): the new tokens continue the cached sequence; pick the rows to sample from
  std::iota(positions.begin(), positions.end(), cache.length());
  if (all_rows) {
    rows.resize(tokens.size());
    std::iota(rows.begin(), rows.end(), 0);
  } else {
    rows.push_back(n - 1);
  }
  // END EXERCISE
  return forward_tokens(w, tokens, positions, rows, cache, scratch);
}

KvCacheEngine::KvCacheEngine(const ModelWeights& weights, std::vector<int> stop_ids)
    : w_(weights), stop_ids_(std::move(stop_ids)) {}

KvCache& KvCacheEngine::cache_for(int tokens) {
  if (tokens > w_.config.context_length) {
    throw Error("request needs " + std::to_string(tokens) + " positions but the model's context is " +
                std::to_string(w_.config.context_length));
  }
  // One slab per request, as long as that request can ever get; kept for the next if big enough.
  if (!cache_ || cache_->capacity() < tokens) cache_ = std::make_unique<KvCache>(w_.config, tokens);
  cache_->clear();
  stats_.kv_bytes_allocated = std::max(stats_.kv_bytes_allocated, cache_->bytes_allocated());
  return *cache_;
}

std::vector<float> KvCacheEngine::logits(const std::vector<int>& tokens) {
  KvCache& cache = cache_for(static_cast<int>(tokens.size()));
  return extend(w_, cache, tokens, /*all_rows=*/true, scratch_);
}

std::vector<RequestResult> KvCacheEngine::run(const std::vector<Request>& requests, const TokenCallback& on_token) {
  stats_ = {};
  const double weight_bytes = weight_bytes_per_step(w_);
  const auto vocab = static_cast<std::size_t>(w_.config.vocab_size);
  std::vector<RequestResult> results;
  Timer clock;  // times are seconds since the run started
  for (std::size_t r = 0; r < requests.size(); ++r) {
    const Request& req = requests[r];
    wait_until(clock, req.arrival_s);
    RequestResult out = result_for(req);
    if (req.max_new_tokens > 0) {
      if (req.prompt.empty()) throw Error("request " + req.id + ": empty prompt");
      KvCache& cache = cache_for(checked_add(static_cast<int>(req.prompt.size()), req.max_new_tokens,
                                             "request " + req.id + ": prompt + max_new_tokens"));
      Sampler sampler(req.sampling);
      std::vector<float> logits = extend(w_, cache, req.prompt, false, scratch_);  // prefill
      for (int step = 0;; ++step) {
        out.error = non_finite_logits(logits.data(), w_.config.vocab_size, out.tokens.size());
        if (!out.error.empty()) break;  // no token can be sampled from NaN/Inf
        const int next = sampler.sample(logits.data(), w_.config.vocab_size);
        out.tokens.push_back(next);
        out.token_time_s.push_back(clock.seconds());
        if (keep_logits_)
          out.logits.insert(out.logits.end(), logits.begin(), logits.begin() + static_cast<long>(vocab));
        if (on_token) on_token(r, next);
        if (is_stop(stop_ids_, next)) {
          out.stopped = true;
          break;
        }
        if (step + 1 == req.max_new_tokens) break;
        Timer step_timer;
        const int token[1] = {next};
        logits = extend(w_, cache, token, false, scratch_);  // decode: one token against the cache
        stats_.decode_seconds += step_timer.seconds();
        stats_.decode_steps += 1;
        stats_.decode_bytes += weight_bytes + static_cast<double>(cache.bytes_used());
      }
      stats_.kv_bytes_used = std::max(stats_.kv_bytes_used, cache.bytes_used());
    }
    results.push_back(std::move(out));
  }
  return results;
}

}  // namespace llm::stage01
