#include "common/metrics.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>

#include "common/timer.h"

namespace llm {

std::size_t peak_rss_bytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<std::size_t>(ru.ru_maxrss) * 1024;  // Linux reports kilobytes
}

double percentile(std::vector<double> xs, double p) {
  if (xs.empty()) return 0.0;
  std::sort(xs.begin(), xs.end());
  const double pos = p / 100.0 * static_cast<double>(xs.size() - 1);
  const auto lo = static_cast<std::size_t>(pos);
  const std::size_t hi = std::min(lo + 1, xs.size() - 1);
  return xs[lo] + (xs[hi] - xs[lo]) * (pos - static_cast<double>(lo));
}

RunMetrics compute_metrics(const std::vector<RequestResult>& results, double wall_s) {
  RunMetrics m;
  m.wall_s = wall_s;
  std::vector<double> ttfts, tpots;
  for (const auto& r : results) {
    RequestMetrics q;
    q.id = r.id;
    q.prompt_tokens = r.prompt_tokens;
    q.generated_tokens = static_cast<int>(r.tokens.size());
    if (!r.token_time_s.empty()) {
      q.ttft_s = r.token_time_s.front() - r.arrival_s;
      q.latency_s = r.token_time_s.back() - r.arrival_s;
      ttfts.push_back(q.ttft_s);
      if (r.token_time_s.size() > 1) {
        q.tpot_s = (r.token_time_s.back() - r.token_time_s.front()) / static_cast<double>(r.token_time_s.size() - 1);
        tpots.push_back(q.tpot_s);
      }
    }
    m.generated_tokens += q.generated_tokens;
    m.requests.push_back(q);
  }
  auto mean = [](const std::vector<double>& v) {
    double s = 0.0;
    for (double x : v) s += x;
    return v.empty() ? 0.0 : s / static_cast<double>(v.size());
  };
  m.mean_ttft_s = mean(ttfts);
  m.p50_ttft_s = percentile(ttfts, 50);
  m.p90_ttft_s = percentile(ttfts, 90);
  m.mean_tpot_s = mean(tpots);
  m.p90_tpot_s = percentile(tpots, 90);
  m.tokens_per_s = wall_s > 0 ? static_cast<double>(m.generated_tokens) / wall_s : 0.0;
  m.peak_rss_bytes = peak_rss_bytes();
  return m;
}

std::string format_metrics(const RunMetrics& m) {
  char buf[256];
  std::string out;
  auto line = [&](const char* name, const std::string& value) {
    std::snprintf(buf, sizeof(buf), "  %-22s %s\n", name, value.c_str());
    out += buf;
  };
  auto ms = [](double s) {
    char b[64];
    std::snprintf(b, sizeof(b), "%.1f ms", s * 1e3);
    return std::string(b);
  };
  auto num = [](const char* fmt, double v) {
    char b[64];
    std::snprintf(b, sizeof(b), fmt, v);
    return std::string(b);
  };
  out += "---- metrics (" + m.stage + ", " + m.model + ")\n";
  line("requests", std::to_string(m.requests.size()));
  line("generated tokens", std::to_string(m.generated_tokens));
  line("wall time", num("%.3f s", m.wall_s));
  line("throughput", num("%.2f tokens/s", m.tokens_per_s));
  line("TTFT mean / p50 / p90", ms(m.mean_ttft_s) + " / " + ms(m.p50_ttft_s) + " / " + ms(m.p90_ttft_s));
  line("TPOT mean / p90", ms(m.mean_tpot_s) + " / " + ms(m.p90_tpot_s));
  line(("weights (" + m.weight_storage + ")").c_str(),
       num("%.1f MiB", static_cast<double>(m.weight_bytes) / (1 << 20)));
  const EngineStats& e = m.engine;
  const double mib = 1 << 20;
  if (e.kv_bytes_allocated > 0) {
    line("KV cache used / alloc", num("%.2f MiB", static_cast<double>(e.kv_bytes_used) / mib) + " / " +
                                      num("%.2f MiB", static_cast<double>(e.kv_bytes_allocated) / mib));
  }
  if (e.decode_seconds > 0) {
    line("decode memory traffic",
         num("%.1f GB/s", e.decode_bytes / e.decode_seconds / 1e9) + " (weights + KV read per step)");
  }
  if (e.slot_steps > 0) {
    line("wasted slot-steps",
         std::to_string(e.wasted_slot_steps) + " of " + std::to_string(e.slot_steps) +
             num(" (%.0f%%)", 100.0 * static_cast<double>(e.wasted_slot_steps) / static_cast<double>(e.slot_steps)));
  }
  if (e.kv_pool_bytes > 0) line("KV pool (reserved)", num("%.2f MiB", static_cast<double>(e.kv_pool_bytes) / mib));
  if (e.prefill_tokens + e.prefix_hit_tokens > 0) {
    line("prefix cache hits", std::to_string(e.prefix_hit_tokens) + " of " +
                                  std::to_string(e.prefill_tokens + e.prefix_hit_tokens) + " prompt tokens" +
                                  num(" (%.0f%%)", 100.0 * static_cast<double>(e.prefix_hit_tokens) /
                                                       static_cast<double>(e.prefill_tokens + e.prefix_hit_tokens)));
  }
  if (e.kv_pool_bytes > 0) line("preemptions", std::to_string(e.preemptions));
  if (e.rejected > 0) line("rejected requests", std::to_string(e.rejected));
  for (const auto& [name, value] : e.stage_figures) line(name.c_str(), num("%.3f", value));
  line("peak resident memory", num("%.1f MiB", static_cast<double>(m.peak_rss_bytes) / mib));
  return out;
}

nlohmann::json metrics_to_json(const RunMetrics& m) {
  nlohmann::json j;
  j["stage"] = m.stage;
  j["model"] = m.model;
  j["wall_s"] = m.wall_s;
  j["generated_tokens"] = m.generated_tokens;
  j["tokens_per_s"] = m.tokens_per_s;
  j["ttft_s"] = {{"mean", m.mean_ttft_s}, {"p50", m.p50_ttft_s}, {"p90", m.p90_ttft_s}};
  j["tpot_s"] = {{"mean", m.mean_tpot_s}, {"p90", m.p90_tpot_s}};
  j["weight_bytes"] = m.weight_bytes;
  j["weight_storage"] = m.weight_storage;
  j["peak_rss_bytes"] = m.peak_rss_bytes;
  const EngineStats& e = m.engine;
  j["engine"] = {{"kv_bytes_allocated", e.kv_bytes_allocated},
                 {"kv_bytes_used", e.kv_bytes_used},
                 {"decode_steps", e.decode_steps},
                 {"decode_seconds", e.decode_seconds},
                 {"decode_bytes", e.decode_bytes},
                 {"slot_steps", e.slot_steps},
                 {"wasted_slot_steps", e.wasted_slot_steps},
                 {"padded_tokens", e.padded_tokens},
                 {"kv_pool_bytes", e.kv_pool_bytes},
                 {"preemptions", e.preemptions},
                 {"prefill_tokens", e.prefill_tokens},
                 {"prefix_hit_tokens", e.prefix_hit_tokens},
                 {"rejected", e.rejected}};
  for (const auto& [name, value] : e.stage_figures) j["engine"][name] = value;
  j["requests"] = nlohmann::json::array();
  for (const auto& r : m.requests) {
    j["requests"].push_back({{"id", r.id},
                             {"prompt_tokens", r.prompt_tokens},
                             {"generated_tokens", r.generated_tokens},
                             {"ttft_s", r.ttft_s},
                             {"tpot_s", r.tpot_s},
                             {"latency_s", r.latency_s}});
  }
  return j;
}

}  // namespace llm
