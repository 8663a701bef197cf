#include "server_metrics.h"

#include <chrono>
#include <cstdio>

#include "online_engine.h"

namespace llm::stage08 {

namespace {
std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}
}  // namespace

void Histogram::observe(double seconds) {
  for (std::size_t i = 0; i < kBounds.size(); ++i) {
    if (seconds <= kBounds[i]) {
      ++counts_[i];
      break;
    }
  }
  ++count_;  // above the last bound: only in +Inf
  sum_ += seconds;
}

std::string Histogram::text(const std::string& name, const std::string& help) const {
  std::string out = "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  long cumulative = 0;
  for (std::size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += counts_[i];
    out += name + "_bucket{le=\"" + number(kBounds[i]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(count_) + "\n";
  out += name + "_sum " + number(sum_) + "\n" + name + "_count " + std::to_string(count_) + "\n";
  return out;
}

void ServerMetrics::observe(const RequestResult& result, const RequestStream& stream) {
  using seconds = std::chrono::duration<double>;
  std::lock_guard lock(mutex_);
  tokens_ += static_cast<long>(result.tokens.size());
  if (!result.rejected.empty()) ++rejected_;
  else if (result.error == "cancelled") ++cancelled_;
  else if (!result.error.empty()) ++failed_;
  else ++finished_;
  const auto first = stream.first_token();
  if (!first) return;
  ttft_.observe(seconds(*first - stream.submitted()).count());
  if (result.tokens.size() >= 2) {
    tpot_.observe(seconds(stream.last_token() - *first).count() / static_cast<double>(result.tokens.size() - 1));
  }
}

void ServerMetrics::refused(int status) {
  std::lock_guard lock(mutex_);
  if (status == 429) ++refused_429_;
  else if (status >= 500) ++refused_5xx_;
  else ++refused_4xx_;
}

std::string ServerMetrics::prometheus(const EngineSnapshot& e) const {
  std::lock_guard lock(mutex_);
  auto gauge = [](const std::string& name, const std::string& help, const std::string& type, double v) {
    return "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " + number(v) + "\n";
  };
  std::string out;
  out += ttft_.text("llm_time_to_first_token_seconds", "submission to first token, per request");
  out += tpot_.text("llm_time_per_output_token_seconds", "mean time between a request's later tokens");
  out += gauge("llm_requests_running", "sequences in the running set after the last step", "gauge", e.running);
  out += gauge("llm_requests_waiting", "requests queued, not yet running", "gauge", e.waiting);
  out += gauge("llm_kv_blocks_used", "KV blocks held by sequences", "gauge", e.used_blocks);
  out += gauge("llm_kv_blocks_total", "KV blocks in the pool", "gauge", e.num_blocks);
  out += gauge("llm_engine_steps_total", "engine steps run", "counter", static_cast<double>(e.steps));
  out += gauge("llm_generated_tokens_total", "tokens generated", "counter", static_cast<double>(tokens_));
  out += "# HELP llm_requests_total requests that reached the engine, by outcome\n# TYPE llm_requests_total counter\n";
  out += "llm_requests_total{outcome=\"finished\"} " + std::to_string(finished_) + "\n";
  out += "llm_requests_total{outcome=\"cancelled\"} " + std::to_string(cancelled_) + "\n";
  out += "llm_requests_total{outcome=\"rejected\"} " + std::to_string(rejected_) + "\n";
  out += "llm_requests_total{outcome=\"failed\"} " + std::to_string(failed_) + "\n";
  out += "# HELP llm_http_refused_total requests refused before the engine, by class\n# TYPE llm_http_refused_total counter\n";
  out += "llm_http_refused_total{status=\"4xx\"} " + std::to_string(refused_4xx_) + "\n";
  out += "llm_http_refused_total{status=\"429\"} " + std::to_string(refused_429_) + "\n";
  out += "llm_http_refused_total{status=\"5xx\"} " + std::to_string(refused_5xx_) + "\n";
  return out;
}

}  // namespace llm::stage08
