// timer.h: wall-clock seconds from a monotonic clock, and peak resident memory.
#pragma once

#include <chrono>
#include <cstddef>

namespace llm {

/// Seconds since construction (or the last reset), from std::chrono::steady_clock.
class Timer {
 public:
  Timer() : start_(std::chrono::steady_clock::now()) {}
  void reset() { start_ = std::chrono::steady_clock::now(); }
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  std::chrono::steady_clock::time_point start_;
};

/// Peak resident set size of this process so far, in bytes (getrusage).
std::size_t peak_rss_bytes();

}  // namespace llm
