// engine.h: the one small interface every stage's engine implements, and the request types.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/timer.h"

namespace llm {

/// How the next token is chosen. temperature 0 means greedy (argmax).
struct SamplingParams {
  float temperature = 0.0f;
  int top_k = 0;       ///< keep the k most likely tokens; 0 = all
  float top_p = 1.0f;  ///< keep the smallest set whose probability reaches p; 1 = all
  std::uint64_t seed = 42;
};

/// One generation request.
struct Request {
  std::string id;
  std::vector<int> prompt;  ///< token ids, BOS included if the model wants one
  int max_new_tokens = 0;
  SamplingParams sampling;
  double arrival_s = 0.0;  ///< when it arrives, seconds after the run starts (online workloads)
};

/// What one request produced, with the times each token appeared.
struct RequestResult {
  std::string id;
  int prompt_tokens = 0;
  std::vector<int> tokens;           ///< generated ids (a stop token, if hit, is included)
  std::vector<double> token_time_s;  ///< for each generated token, seconds since the run started
  double arrival_s = 0.0;
  bool stopped = false;  ///< ended on a stop token rather than max_new_tokens
  /// Why the engine refused the request ("" = it was served): it can never fit the context or
  /// the KV pool, or the queue was full (stage 03 on).
  std::string rejected;
  /// Why the request ended early although it was admitted ("" = it ran to a stop token or
  /// max_new_tokens): a step's logits were not finite (common/sampler.h, non_finite_logits), so
  /// no token was sampled from them. `tokens` holds what came before. Other requests go on.
  std::string error;
  /// [tokens.size(), vocab]: the logits each token was sampled from. Filled only when the engine
  /// was asked to keep them (Engine::set_keep_logits), for the stage-to-stage checks.
  std::vector<float> logits;
};

/// What an engine counts while it runs, for the bench and the metrics table. Zero = not counted
/// by this stage (stage 00 keeps no cache, batch-1 stages have no slots).
struct EngineStats {
  std::size_t kv_bytes_allocated = 0;  ///< peak bytes reserved for K/V (whether used or not)
  std::size_t kv_bytes_used = 0;       ///< peak bytes holding K/V of real tokens
  long decode_steps = 0;               ///< forward passes that produced one token per running row
  double decode_seconds = 0.0;         ///< time spent in those passes
  double decode_bytes = 0.0;           ///< bytes they read: weights once per step + each row's K/V
  long slot_steps = 0;                 ///< batch rows x decode steps (batching stages)
  long wasted_slot_steps = 0;          ///< of which spent on rows whose request had already finished
  long padded_tokens = 0;              ///< prompt positions computed only as padding
  std::size_t kv_pool_bytes = 0;       ///< the paged KV pool reserved up front (stage 03 on)
  long preemptions = 0;                ///< sequences sent back to the queue to free KV blocks
  long prefill_tokens = 0;             ///< prompt tokens run through the model (recomputation included)
  long prefix_hit_tokens = 0;          ///< prompt tokens taken from the prefix cache instead
  long rejected = 0;                   ///< requests refused (see RequestResult::rejected)
  /// The weights' storage when the engine chose it at run time ("q4_1 (as stored) + q8_0 embed", ...;
  /// "" = the stage's fixed one, StageInfo::weight_storage) and its bytes.
  std::string weight_storage;
  std::size_t weight_bytes = 0;
  /// A stage's own figures, (name, value), printed and put in the JSON as they are (stage 06:
  /// acceptance rate, tokens per verify step, target forwards per token, draft share of time).
  std::vector<std::pair<std::string, double>> stage_figures;
};

/// A result for `request` with its id, prompt length and arrival filled in, nothing generated yet.
RequestResult result_for(const Request& request);
/// Whether `token` is one of `stop_ids`.
bool is_stop(std::span<const int> stop_ids, int token);
/// Sleeps until `clock` reads at least `t` seconds: how an engine waits for a request that has
/// not arrived yet.
void wait_until(const Timer& clock, double t);

/// Called as each token is generated: (index of the request in the batch, token id).
using TokenCallback = std::function<void(std::size_t request, int token)>;

/// A stage's engine.
class Engine {
 public:
  virtual ~Engine() = default;
  /// Teacher-forced logits: row t is the distribution after tokens[0..t]. Returns [n, vocab].
  virtual std::vector<float> logits(const std::vector<int>& tokens) = 0;
  /// Generates for every request; results in the same order.
  virtual std::vector<RequestResult> run(const std::vector<Request>& requests, const TokenCallback& on_token) = 0;
  /// Counters of the last run() (see EngineStats).
  virtual EngineStats stats() const { return {}; }
  /// Ask run() to return each token's logits in RequestResult::logits (costs memory; for checks).
  void set_keep_logits(bool keep) { keep_logits_ = keep; }

 protected:
  bool keep_logits_ = false;
};

}  // namespace llm
