#include "online_engine.h"

#include <algorithm>
#include <exception>

namespace llm::stage08 {

namespace {
RequestResult cancelled_result(const Request& r) {
  RequestResult out = result_for(r);
  out.error = "cancelled";
  return out;
}
}  // namespace

bool admits(int waiting, int max_waiting) {
  // BEGIN EXERCISE(backpressure): admit a new request only while fewer than max_waiting wait
  return waiting < max_waiting;
  // END EXERCISE
}

// The engine thread's side: everything here runs on that thread, so the table of live requests
// needs no lock; only the hand-over from pending_/cancels_ takes the mutex.
class OnlineEngine::Feed : public stage03::RequestFeed {
 public:
  explicit Feed(OnlineEngine& owner) : o_(owner) {}

  bool poll(const stage03::Scheduler& scheduler, bool idle, std::vector<Request>& arrived,
            std::vector<std::size_t>& cancelled) override {
    if (output_ && o_.on_output_) o_.on_output_();  // the last step's tokens, all at once
    output_ = false;
    std::unique_lock lock(o_.mutex_);
    record(scheduler, idle);
    if (idle) {
      if (handed_ >= static_cast<std::size_t>(o_.config_.requests_per_run) && o_.pending_.empty()) return false;
      o_.wake_.wait(lock, [&] { return !o_.pending_.empty() || !o_.cancels_.empty() || o_.stopping_; });
      record(scheduler, idle);
    }
    if (o_.stopping_) {  // shutting down: everything still queued or running is cancelled
      for (auto& [r, live] : live_) cancelled.push_back(r);
      o_.cancels_.clear();
      std::deque<Pending> dropped = std::move(o_.pending_);
      o_.pending_.clear();
      lock.unlock();
      for (Pending& p : dropped) p.stream->finish(cancelled_result(p.request));
      return !(idle && live_.empty());
    }
    for (Pending& p : o_.pending_) {
      const std::size_t r = handed_++;
      live_[r] = Live{p.id, p.stream};
      run_index_[p.id] = r;
      arrived.push_back(std::move(p.request));
    }
    o_.pending_.clear();
    for (std::uint64_t id : o_.cancels_) {
      auto it = run_index_.find(id);
      if (it != run_index_.end()) cancelled.push_back(it->second);
    }
    o_.cancels_.clear();
    return true;
  }

  void done(std::size_t r, RequestResult result) override {
    auto it = live_.find(r);
    if (it == live_.end()) return;
    const Live live = it->second;
    live_.erase(it);
    run_index_.erase(live.id);
    o_.metrics_.observe(result, *live.stream);
    live.stream->finish(std::move(result));
    output_ = true;
  }

  void token(std::size_t r, int id) {
    auto it = live_.find(r);
    if (it != live_.end()) it->second.stream->push_token(id);
    output_ = true;
  }

  /// The engine failed: every live request ends with the reason.
  void fail_all(const std::string& why) {
    for (auto& [r, live] : live_) {
      RequestResult out;
      out.error = why;
      live.stream->finish(std::move(out));
    }
    live_.clear();
    run_index_.clear();
  }

  /// A new run of the engine numbers its requests from 0 again.
  void new_run() {
    handed_ = 0;
    live_.clear();
    run_index_.clear();
  }

 private:
  struct Live {
    std::uint64_t id;
    std::shared_ptr<RequestStream> stream;
  };

  // Under o_.mutex_.
  void record(const stage03::Scheduler& scheduler, bool idle) {
    EngineSnapshot& s = o_.snapshot_;
    if (!idle) ++s.steps;
    const stage03::BlockPool& pool = scheduler.pool();
    s.running = static_cast<int>(scheduler.running().size());
    s.waiting = static_cast<int>(scheduler.waiting().size() + o_.pending_.size());
    s.used_blocks = pool.used_blocks();
    s.num_blocks = pool.num_blocks();
    s.block_owner.assign(static_cast<std::size_t>(pool.num_blocks()), 0);
    s.block_shared.assign(static_cast<std::size_t>(pool.num_blocks()), 0);
    s.running_ids.clear();
    for (int seq : scheduler.running()) {
      const stage03::Sequence& q = scheduler.sequence(seq);
      auto it = live_.find(q.index);
      const std::uint64_t id = it == live_.end() ? 0 : it->second.id;
      s.running_ids.push_back(id);
      for (int b : q.blocks) {
        auto& owner = s.block_owner[static_cast<std::size_t>(b)];
        if (owner != 0 && owner != id) s.block_shared[static_cast<std::size_t>(b)] = 1;
        if (owner == 0) owner = id;
      }
    }
  }

  OnlineEngine& o_;
  bool output_ = false;     ///< a token was pushed or a request finished since the last poll
  std::size_t handed_ = 0;  ///< requests handed to this run (their run index is their order)
  std::unordered_map<std::size_t, Live> live_;
  std::unordered_map<std::uint64_t, std::size_t> run_index_;
};

OnlineEngine::OnlineEngine(stage03::ContinuousBatchEngine& engine, OnlineConfig config, ServerMetrics& metrics,
                           std::function<void()> on_output)
    : engine_(engine), config_(config), metrics_(metrics), on_output_(std::move(on_output)) {
  snapshot_.num_blocks = engine.num_blocks();
  thread_ = std::thread([this] { loop(); });
}

OnlineEngine::~OnlineEngine() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void OnlineEngine::loop() {
  Feed feed(*this);
  const auto on_token = [&feed](std::size_t r, int id) { feed.token(r, id); };
  try {
    for (;;) {
      feed.new_run();
      engine_.run_online(feed, on_token);
      std::lock_guard lock(mutex_);
      if (stopping_ && pending_.empty()) return;
    }
  } catch (const std::exception& e) {
    // The engine cannot go on (an executor error, out of memory): every request ends with the
    // reason, and later submissions are refused with it (the server answers 503).
    std::deque<Pending> dropped;
    {
      std::lock_guard lock(mutex_);
      failure_ = std::string("engine stopped: ") + e.what();
      stopping_ = true;
      dropped = std::move(pending_);
      pending_.clear();
    }
    feed.fail_all(failure_);
    for (Pending& p : dropped) {
      RequestResult out = result_for(p.request);
      out.error = failure_;
      p.stream->finish(std::move(out));
    }
    if (on_output_) on_output_();
  }
}

std::uint64_t OnlineEngine::submit(Request request, std::shared_ptr<RequestStream> stream, std::string& why) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) {
      why = failure_.empty() ? "the server is shutting down" : failure_;
      return 0;
    }
    // snapshot_.waiting counts what waits in the scheduler's queue (as of the last step) and here.
    if (!admits(snapshot_.waiting, config_.max_waiting)) {
      why = "too many requests waiting (" + std::to_string(snapshot_.waiting) + ", limit " +
            std::to_string(config_.max_waiting) + "): retry later";
      return 0;
    }
    const std::uint64_t id = next_id_++;
    pending_.push_back(Pending{id, std::move(request), std::move(stream)});
    snapshot_.waiting += 1;
    wake_.notify_one();
    return id;
  }
}

void OnlineEngine::cancel(std::uint64_t id) {
  std::optional<Pending> dropped;
  {
    std::lock_guard lock(mutex_);
    // BEGIN EXERCISE(cancel-request): a request still in pending_ leaves it now (into `dropped`); else ask the engine thread (cancels_)
    auto it = std::find_if(pending_.begin(), pending_.end(), [&](const Pending& p) { return p.id == id; });
    if (it != pending_.end()) {  // it never reached the engine: nothing to free there
      dropped = std::move(*it);
      pending_.erase(it);
      snapshot_.waiting -= 1;
    } else {  // the engine thread frees its blocks at its next poll, before the next step
      cancels_.push_back(id);
    }
    // END EXERCISE
  }
  wake_.notify_one();
  if (dropped) {
    RequestResult out = cancelled_result(dropped->request);
    metrics_.observe(out, *dropped->stream);
    dropped->stream->finish(std::move(out));
  }
}

EngineSnapshot OnlineEngine::snapshot() const {
  std::lock_guard lock(mutex_);
  return snapshot_;
}

std::string OnlineEngine::failure() const {
  std::lock_guard lock(mutex_);
  return failure_;
}

}  // namespace llm::stage08
