// metrics.h: the serving metrics the literature uses, computed from per-token timestamps.
//   TTFT  time to first token: arrival -> first generated token
//   TPOT  time per output token: mean gap between a request's later tokens
//   throughput: generated tokens / wall time
// plus wall time and peak memory. A table for people and JSON for machines.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/engine.h"

namespace llm {

/// Metrics of one request, in seconds.
struct RequestMetrics {
  std::string id;
  int prompt_tokens = 0;
  int generated_tokens = 0;
  double ttft_s = 0.0;
  double tpot_s = 0.0;     ///< 0 when fewer than two tokens were generated
  double latency_s = 0.0;  ///< arrival -> last token
};

/// Metrics of a whole run.
struct RunMetrics {
  std::string stage;  ///< e.g. "00_naive"
  std::string model;  ///< model file
  std::vector<RequestMetrics> requests;
  double wall_s = 0.0;
  long generated_tokens = 0;
  double tokens_per_s = 0.0;
  double mean_ttft_s = 0.0, p50_ttft_s = 0.0, p90_ttft_s = 0.0;
  double mean_tpot_s = 0.0, p90_tpot_s = 0.0;
  std::size_t weight_bytes = 0;         ///< of the weights the engine runs on
  std::string weight_storage = "fp32";  ///< their type ("fp16" for stage 04's copy)
  std::size_t peak_rss_bytes = 0;
  EngineStats engine;  ///< the engine's own counters (KV bytes, decode bytes, slot-steps)
};

/// Computes per-request and aggregate metrics from the engine's results.
RunMetrics compute_metrics(const std::vector<RequestResult>& results, double wall_s);
/// The p-th percentile (0..100) of xs by linear interpolation; 0 for an empty list.
double percentile(std::vector<double> xs, double p);
/// A fixed-width table for a terminal.
std::string format_metrics(const RunMetrics& m);
/// The same as JSON.
nlohmann::json metrics_to_json(const RunMetrics& m);

}  // namespace llm
