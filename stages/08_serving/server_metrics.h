// server_metrics.h: what the server measures inside itself, printed in Prometheus's text format
// for GET /metrics: TTFT and TPOT histograms (seconds, from submission to the engine), requests
// by outcome, tokens generated, and the engine's state (running, waiting, KV blocks).
#pragma once

#include <array>
#include <mutex>
#include <string>

#include "common/engine.h"
#include "request_stream.h"

namespace llm::stage08 {

struct EngineSnapshot;

/// A Prometheus histogram: cumulative counts per upper bound (seconds), their sum and count.
class Histogram {
 public:
  static constexpr std::array<double, 14> kBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                      0.25,  0.5,    1.0,   2.5,  5.0,   10.0, 30.0};
  void observe(double seconds);
  /// `name`_bucket{le=...}, `name`_sum and `name`_count lines.
  std::string text(const std::string& name, const std::string& help) const;

 private:
  std::array<long, kBounds.size()> counts_{};  ///< not cumulative here; summed when printed
  long count_ = 0;
  double sum_ = 0.0;
};

/// Counters over the server's life. Thread-safe.
class ServerMetrics {
 public:
  /// Request over: its outcome, its tokens, and its TTFT/TPOT from the stream's times.
  void observe(const RequestResult& result, const RequestStream& stream);
  /// A request refused before it reached the engine (bad input, auth, full queue), by status.
  void refused(int status);
  /// The whole /metrics page.
  std::string prometheus(const EngineSnapshot& engine) const;

 private:
  mutable std::mutex mutex_;
  Histogram ttft_, tpot_;
  long finished_ = 0, cancelled_ = 0, rejected_ = 0, failed_ = 0;
  long tokens_ = 0;
  long refused_4xx_ = 0, refused_429_ = 0, refused_5xx_ = 0;
};

}  // namespace llm::stage08
