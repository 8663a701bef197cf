// request_stream.h: one request's channel from the engine thread to the HTTP thread that waits
// for it. The engine pushes each token as it is sampled and, once, the final result; the HTTP
// thread takes whatever has come, waiting at most a given time, so it can notice a client that
// went away and never blocks for ever.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <vector>

#include "common/engine.h"

namespace llm::stage08 {

class RequestStream {
 public:
  using Clock = std::chrono::steady_clock;

  /// Engine thread: token `id` was sampled.
  void push_token(int id) {
    {
      std::lock_guard lock(mutex_);
      if (tokens_.empty() && taken_ == 0) first_token_ = Clock::now();
      last_token_ = Clock::now();
      tokens_.push_back(id);
    }
    ready_.notify_all();
  }
  /// Engine thread: the request is over (served, refused, failed or cancelled).
  void finish(RequestResult result) {
    {
      std::lock_guard lock(mutex_);
      result_ = std::move(result);
    }
    ready_.notify_all();
  }
  /// HTTP thread: moves the tokens that came since the last call to `out` (appended) and returns
  /// the result once the request is over and every token has been taken; waits up to `timeout`
  /// while there is nothing new.
  std::optional<RequestResult> take(std::vector<int>& out, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    ready_.wait_for(lock, timeout, [&] { return !tokens_.empty() || result_.has_value(); });
    return take_locked(out);
  }
  /// Any thread: moves the tokens that came since the last take to `out` (appended) and returns
  /// the result once the request is over and every token has been taken; never waits.
  std::optional<RequestResult> take_now(std::vector<int>& out) {
    std::lock_guard lock(mutex_);
    return take_locked(out);
  }
  /// True when a take would return something new: tokens, or the result. Never waits.
  bool has_news() const {
    std::lock_guard lock(mutex_);
    return !tokens_.empty() || result_.has_value();
  }
  /// When the request was submitted, its first and its latest token appeared (steady clock).
  Clock::time_point submitted() const { return submitted_; }
  std::optional<Clock::time_point> first_token() const {
    std::lock_guard lock(mutex_);
    if (tokens_.empty() && taken_ == 0) return std::nullopt;
    return first_token_;
  }
  Clock::time_point last_token() const {
    std::lock_guard lock(mutex_);
    return last_token_;
  }

 private:
  // Under mutex_: what take and take_now hand over.
  std::optional<RequestResult> take_locked(std::vector<int>& out) {
    out.insert(out.end(), tokens_.begin(), tokens_.end());
    taken_ += tokens_.size();
    tokens_.clear();
    return result_;
  }

  const Clock::time_point submitted_ = Clock::now();
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::vector<int> tokens_;  ///< pushed, not yet taken
  std::size_t taken_ = 0;
  Clock::time_point first_token_{}, last_token_{};
  std::optional<RequestResult> result_;
};

}  // namespace llm::stage08
