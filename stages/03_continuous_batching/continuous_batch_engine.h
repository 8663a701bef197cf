// continuous_batch_engine.h: stage 03's engine. A loop of steps; in each, requests that have
// arrived join, the scheduler picks this step's rows (decode tokens of running sequences and
// chunks of new prompts), one forward runs them all over the paged KV pool, and every sequence
// that reached the end of its tokens samples one. A finished request leaves at once and its
// blocks go back to the pool, so its row is free for the next request in the very next step.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "block_pool.h"
#include "common/cli.h"
#include "common/engine.h"
#include "common/forward.h"
#include "common/model_weights.h"
#include "common/sampler.h"
#include "scheduler.h"
#include "step_executor.h"

namespace llm::stage03 {

/// Stage 03's settings.
struct ContinuousBatchConfig {
  SchedulerConfig scheduler;
  int block_size = 8;  ///< tokens per KV block (--block-size; the README measures 4 to 32)
  /// Blocks in the pool (--kv-blocks). 0 = enough for max_running sequences of the whole context,
  /// but at most kDefaultPoolBytes.
  int num_blocks = 0;
  static constexpr std::size_t kDefaultPoolBytes = std::size_t{256} << 20;
};

/// Stage 03's settings from their values (tests) ...
ContinuousBatchConfig continuous_batch_config(int batch, int token_budget, int block_size, int num_blocks = 0,
                                              bool prefix_caching = true);
/// ... or from a command line's --batch and paged-KV flags (--token-budget, --max-queue,
/// --no-prefix-cache, --block-size, --kv-blocks).
ContinuousBatchConfig continuous_batch_config(const CliOptions& o);

/// What a later stage may change in the decode step (stage 06: speculative decoding). Without
/// one, every sampling chunk gives one token, drawn by the request's Sampler.
class DecodePolicy {
 public:
  virtual ~DecodePolicy() = default;
  /// A run starts; sequence ids are the scheduler's (Scheduler::sequence(id).index = request).
  /// `requests`: all of them, known up front (run), or none (run_online: each comes through
  /// add_request as it arrives). `longest`: tokens (prompt + new) of the longest sequence the run
  /// may hold: the longest request's offline, the model's context online.
  virtual void begin_run(const std::vector<Request>& requests, int longest) = 0;
  /// Online (stage 08): request number `index` (numbered in order of arrival) has arrived.
  virtual void add_request(std::size_t index, const Request& request) = 0;
  /// Before each schedule(): may add proposals to running sequences (Scheduler::propose).
  virtual void before_step(Scheduler& scheduler) = 0;
  /// After the forward, for sequence `seq` (`s`) whose chunk sampled: logits [rows, vocab], row i scoring
  /// the position after its i-th proposal (row 0: after its last verified token), rows <=
  /// s.proposed + 1 (fewer only when a later row was not finite). Returns the tokens to emit:
  /// the accepted proposals, in order, then one token drawn from the target.
  virtual std::vector<int> choose(int seq, const Sequence& s, const float* logits, int rows, Sampler& sampler) = 0;
  /// Sequence `seq` has finished (its request is done).
  virtual void end_sequence(int seq) = 0;
};

/// Where an online run (stage 08) gets its requests: instead of a list known up front, requests
/// arrive and may be cancelled while the engine runs. Requests are numbered in order of arrival
/// within one run_online(); that number is the `request` of the TokenCallback.
class RequestFeed {
 public:
  virtual ~RequestFeed() = default;
  /// Called before every step with the scheduler as the last step left it. Appends newly
  /// submitted requests to `arrived` (their arrival_s is set by the engine) and the numbers of
  /// requests to cancel to `cancelled`. When `idle` (nothing waiting or running) it may block
  /// until something comes; returning false then ends the run (asked only when idle).
  virtual bool poll(const Scheduler& scheduler, bool idle, std::vector<Request>& arrived,
                    std::vector<std::size_t>& cancelled) = 0;
  /// Request `r` is over (served, refused, failed or cancelled): its final result.
  virtual void done(std::size_t r, RequestResult result) = 0;
};

/// Stage 03's Engine.
class ContinuousBatchEngine : public Engine {
 public:
  /// Keeps a reference to the weights; they must outlive the engine. Throws llm::Error for a
  /// setting out of range. Steps run on `executor` (null: stage 03's CPU forward).
  ContinuousBatchEngine(const ModelWeights& weights, std::vector<int> stop_ids, ContinuousBatchConfig config,
                        std::unique_ptr<StepExecutor> executor = nullptr);
  std::vector<float> logits(const std::vector<int>& tokens) override;
  /// Requests must be in order of arrival_s. A request that can never run (longer than the
  /// context or the pool) or finds the queue full gets RequestResult::rejected and no tokens.
  std::vector<RequestResult> run(const std::vector<Request>& requests, const TokenCallback& on_token) override;
  EngineStats stats() const override { return stats_; }
  /// The same loop fed online (stage 08): runs until `feed` ends it while idle. A cancelled
  /// request's blocks go back at once (a waiting one never runs). stats() count the whole run.
  void run_online(RequestFeed& feed, const TokenCallback& on_token);

  /// Called after every step with the scheduler, e.g. to check its invariants (tests).
  void set_step_hook(std::function<void(const Scheduler&)> hook) { step_hook_ = std::move(hook); }
  /// Replaces one-token sampling (stage 06); it must outlive the engine's runs. Null: stage 03's.
  void set_decode_policy(DecodePolicy* policy) { policy_ = policy; }
  /// Blocks in the pool run() uses.
  int num_blocks() const { return num_blocks_; }
  /// Blocks still in use (reference count > 0) when the last run() ended: 0 unless blocks leak.
  int blocks_in_use_after_run() const { return blocks_in_use_after_run_; }

 private:
  const ModelWeights& w_;
  std::vector<int> stop_ids_;
  ContinuousBatchConfig config_;
  int num_blocks_;
  std::unique_ptr<StepExecutor> executor_;
  EngineStats stats_;
  std::function<void(const Scheduler&)> step_hook_;
  DecodePolicy* policy_ = nullptr;
  int blocks_in_use_after_run_ = 0;

  /// The loop of run() and run_online(): `feed` null = the fixed list `requests`; else requests
  /// are appended to `requests` as the feed brings them.
  std::vector<RequestResult> run_loop(std::vector<Request>& requests, RequestFeed* feed, const TokenCallback& on_token);
};

}  // namespace llm::stage03
