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
#include "common/engine.h"
#include "common/forward.h"
#include "common/model_weights.h"
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

  /// Called after every step with the scheduler, e.g. to check its invariants (tests).
  void set_step_hook(std::function<void(const Scheduler&)> hook) { step_hook_ = std::move(hook); }
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
  int blocks_in_use_after_run_ = 0;
};

}  // namespace llm::stage03
