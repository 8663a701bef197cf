// static_batch_engine.h: stage 02's engine. Up to B requests run together as one padded batch:
// one prefill over all their prompts, then one decode step per token for all rows at once, so
// each step reads the weights once for B tokens instead of once per token. The batch lasts
// until its longest request ends; rows that finish early keep their slot and are computed for
// nothing (wasted slot-steps), and new requests wait for the whole batch to end.
#pragma once

#include <span>
#include <vector>

#include "common/engine.h"
#include "common/forward.h"
#include "common/model_weights.h"
#include "common/sampler.h"
#include "common/timer.h"

namespace llm::stage02 {

/// One row of a running batch: its request, its sampler and what it has produced.
struct BatchRow {
  const Request* request = nullptr;
  std::size_t index = 0;  ///< the request's index in run()'s list
  Sampler sampler{SamplingParams{}};
  RequestResult out;
  bool done = false;  ///< finished; still occupies its slot until the batch ends
};

/// After each row that was still running has received a token (appended to out.tokens), marks
/// the rows whose request has now ended: a stop token (out.stopped = true) or max_new_tokens
/// reached. Returns how many rows are still running.
int retire_rows(std::vector<BatchRow>& rows, std::span<const int> stop_ids);

/// Stage 02's Engine.
class StaticBatchEngine : public Engine {
 public:
  /// Keeps a reference to the weights; they must outlive the engine. batch_size >= 1.
  StaticBatchEngine(const ModelWeights& weights, std::vector<int> stop_ids, int batch_size);
  std::vector<float> logits(const std::vector<int>& tokens) override;
  std::vector<RequestResult> run(const std::vector<Request>& requests, const TokenCallback& on_token) override;
  EngineStats stats() const override { return stats_; }

 private:
  void run_batch(std::vector<BatchRow>& rows, const TokenCallback& on_token);

  const ModelWeights& w_;
  std::vector<int> stop_ids_;
  int batch_size_;
  ForwardScratch scratch_;
  EngineStats stats_;
  Timer run_clock_;
};

}  // namespace llm::stage02
