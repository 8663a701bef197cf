// online_engine.h: stage 03's engine as a service. One engine thread runs
// ContinuousBatchEngine::run_online; any other thread submits a request (it gets a
// RequestStream that its tokens flow into as they are sampled) or cancels one. Between steps the
// engine thread takes what was submitted from a queue guarded by one mutex; with nothing to do
// it sleeps on a condition variable (no busy wait) until a submission or a cancellation wakes it.
//
//   HTTP threads ──submit()/cancel()──> pending_, cancels_ ──poll() before each step──> engine thread
//   engine thread ──on_token / done──> RequestStream (one per request) ──take()──> HTTP thread
//   engine thread ──on_output(), once per step that sampled or finished something──> StreamWriter
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "request_stream.h"
#include "server_metrics.h"
#include "stages/03_continuous_batching/continuous_batch_engine.h"

namespace llm::stage08 {

/// The online loop's limits.
struct OnlineConfig {
  /// Requests submitted but not yet running (our queue + the scheduler's), at most; past it
  /// submit() refuses (the server answers 429). The scheduler's own --max-queue still applies.
  int max_waiting = 256;
  /// A run of the engine ends, when idle, after this many requests and a fresh one starts, so
  /// that the scheduler's per-request records (kept for a run) stay bounded.
  int requests_per_run = 10000;
};

/// The admission rule of the online loop (backpressure): a new request is taken while fewer
/// than `max_waiting` requests wait to run; past that the server answers 429 at once, rather
/// than letting the queue, and every waiting client's TTFT, grow without bound.
bool admits(int waiting, int max_waiting);

/// What the engine looked like after its latest step (for /metrics and the live page).
struct EngineSnapshot {
  int running = 0;       ///< sequences in the running set
  int waiting = 0;       ///< in the scheduler's queue + submitted, not yet handed to it
  int used_blocks = 0;   ///< KV blocks with a reference
  int num_blocks = 0;    ///< blocks in the pool (0 before the first run)
  long steps = 0;        ///< engine steps so far (polls after work)
  std::vector<std::uint64_t> block_owner;  ///< per block: the (oldest) request id holding it, 0 = free
  std::vector<std::uint8_t> block_shared;  ///< per block: 1 = held by more than one running request
  std::vector<std::uint64_t> running_ids;  ///< request ids running, oldest first
};

/// The engine thread and its queue. Thread-safe: submit, cancel and snapshot may be called
/// from any thread.
class OnlineEngine {
 public:
  /// Starts the engine thread. `engine` must outlive this object. `on_output`, if given, is
  /// called on the engine thread before each step that follows one which pushed a token or
  /// finished a request (so a writer can take a whole step's tokens in one wake-up), and must
  /// not block.
  OnlineEngine(stage03::ContinuousBatchEngine& engine, OnlineConfig config, ServerMetrics& metrics,
               std::function<void()> on_output = {});
  /// Stops the engine thread: requests still queued or running are cancelled.
  ~OnlineEngine();
  OnlineEngine(const OnlineEngine&) = delete;
  OnlineEngine& operator=(const OnlineEngine&) = delete;

  /// Queues `request`; its tokens and result go to `stream`. Returns the request's id (> 0), or
  /// 0 with `why` set when the queue is full or the engine is stopping.
  std::uint64_t submit(Request request, std::shared_ptr<RequestStream> stream, std::string& why);
  /// Cancels request `id` (no effect once it is over): its stream finishes with error
  /// "cancelled" and its blocks go back to the pool before the next step.
  void cancel(std::uint64_t id);
  EngineSnapshot snapshot() const;
  /// The engine thread stopped on an error (empty while it runs).
  std::string failure() const;

 private:
  class Feed;
  struct Pending {
    std::uint64_t id;
    Request request;
    std::shared_ptr<RequestStream> stream;
  };
  void loop();

  stage03::ContinuousBatchEngine& engine_;
  OnlineConfig config_;
  ServerMetrics& metrics_;
  std::function<void()> on_output_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> pending_;          ///< submitted, not yet handed to the engine
  std::vector<std::uint64_t> cancels_;   ///< ids to cancel at the next poll
  std::uint64_t next_id_ = 1;
  bool stopping_ = false;
  EngineSnapshot snapshot_;
  std::string failure_;
  std::thread thread_;  // last: started when everything above is ready
};

}  // namespace llm::stage08
