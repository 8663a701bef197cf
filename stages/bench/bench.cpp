// bench: runs chosen stages on the same model and workload and measures what each one buys.
//
//   bench --model datasets/models/tiny-target.gguf --workload datasets/workloads/short.jsonl
//
// Per stage: throughput with every request at t = 0 (repeated, stages in alternating order; the
// median of the runs that agree within --noise-factor, more runs when they do not, and a stage
// whose runs never agree is marked noisy and gets no ratio), TTFT and TPOT at light load, QPS (a
// sweep of Poisson arrival rates; the highest rate whose p90 TTFT and p90 TPOT meet the SLO),
// memory (KV allocated and used, the worker's peak RSS above its start) and decode bytes/s
// against this machine's measured memory bandwidth. Each measurement runs in a fresh child
// process (this executable with --worker), so peak RSS and caches are its own; a line of
// progress comes at least every 20 s. Writes <out>/<device>/<name>.json and .md (by default
// under the build folder's results/, which git ignores; scripts/bench --publish writes
// docs/results); scripts/plot_bench.py draws the plots.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cxxopts.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <thread>

#include <sys/wait.h>

#include "common/error.h"
#include "common/forward.h"
#include "common/metrics.h"
#include "common/stage_main.h"
#include "common/timer.h"
#include "host_info.h"
#include "memory_bandwidth.h"
#include "rate_sweep.h"
#include "stage_registry.h"
#include "stages/03_continuous_batching/continuous_batch_engine.h"
#include "stages/03_continuous_batching/scheduler.h"
#include "stages/04_cuda/backend.h"
#include "stages/05_quantization/quality.h"

using nlohmann::json;

namespace llm::bench {
namespace {

/// A worker stopped at an exercise stub (exit code 3): it printed the one error line already.
struct WorkerHitStub {};

struct Options {
  std::string model, tokenizer, workload, name, out;
  std::vector<std::string> stages;
  int batch = 16, repeat = 3, max_repeat = 8, max_requests = 0, qps_requests = 16, trace_tokens = 255;
  /// Throughput runs of a stage agree when the fastest is at most this factor above the slowest.
  double noise_factor = 1.5;
  std::vector<double> qps_fractions;
  std::vector<double> qps_rates;  ///< absolute rates (req/s), the same for every stage; overrides the fractions
  /// Rates relative to the highest capacity among the chosen stages, the same for every stage
  /// (rate_sweep.h), merged with qps_rates; overrides the fractions. Unset when lo = 0.
  RateGrid qps_grid;
  /// Each sweep run sends max(qps_requests, ceil(qps_seconds x rate)) requests (rate_sweep.h),
  /// the workload cycled when that is more than it holds.
  double qps_seconds = 0.0;
  int cycled_workload = 0;  ///< --cycled-workload N: print the workload cycled to N requests and exit
  double slo_ttft_ms = 250.0, slo_tpot_ms = 50.0, bandwidth_mib = 512.0;
  bool qps = true;
  /// The paged stages' KV pool: this many MiB in each stage's own K/V format (0 = each stage's
  /// default pool). With it, a smaller K/V format holds more tokens in the same bytes.
  double kv_budget_mib = 0.0;
  /// Perplexity beside speed: each stage's engine scores this text (stage 05's quality.h).
  std::string ppl_text;
  int ppl_ctx = 256, ppl_windows = 4;
  // worker mode
  std::string worker, stage;
  double rate = 0.0;
  std::uint64_t rate_seed = 1;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string quote(const std::string& s) {
  if (s.find('\'') != std::string::npos) throw Error("path with a single quote is not supported: " + s);
  return "'" + s + "'";
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

// ---------------------------------------------------------------------------------------------
// Worker: one measurement in this process, printed as one JSON document on stdout.

/// The workload's first `limit` requests (0 = all), tokenized, every arrival at t = 0. With
/// `cycle`, a limit above the workload's size cycles it (rate_sweep.h) instead of stopping there.
std::vector<Request> load_requests(const Model& model, const Options& o, int limit, bool cycle = false) {
  CliOptions cli;
  cli.workload = o.workload;
  std::vector<WorkloadItem> items = read_workload(o.workload);
  const auto n = static_cast<std::size_t>(limit);
  if (limit > 0 && items.size() > n) items.resize(n);
  if (limit > 0 && items.size() < n && cycle) items = cycled_workload(items, n);
  std::vector<Request> reqs = build_requests(model, cli, items);
  for (auto& r : reqs) r.arrival_s = 0.0;
  return reqs;
}

std::size_t kv_budget_bytes(const Options& o) {
  return static_cast<std::size_t>(o.kv_budget_mib * static_cast<double>(1 << 20));
}

std::string read_ppl_text(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error("--ppl-text " + path + ": is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("--ppl-text " + path + ": cannot open");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Perplexity of the stage's engine on --ppl-text: --ppl-windows windows of --ppl-ctx tokens,
/// each scoring its last ctx/2 (stage 05's quality.h, as the perplexity tool does by default).
json perplexity_of(const Options& o, const Model& model, Engine& engine) {
  const int ctx = std::min(o.ppl_ctx, model.config().context_length), stride = ctx / 2;
  const std::size_t need = stage05::tokens_needed(ctx, stride, static_cast<std::size_t>(o.ppl_windows));
  const std::vector<int> tokens = model.tokenizer->encode_prompt(read_ppl_text(o.ppl_text), need);
  const stage05::WindowPlan plan = stage05::plan_windows(
      tokens.size(), ctx, stride, static_cast<std::size_t>(o.ppl_windows), "--ppl-text " + o.ppl_text);
  stage05::EvalOptions options;
  // A model trained with BOS at position 0 sees one at the start of every window (llama.cpp's way).
  if (model.tokenizer->vocab().add_bos && model.tokenizer->bos_id() >= 0)
    options.window_start_token = model.tokenizer->bos_id();
  const stage05::EvalResult r = stage05::evaluate(engine, tokens, model.config().vocab_size, plan, options);
  return {{"text", o.ppl_text},     {"ctx", ctx},       {"stride", stride},       {"windows", plan.windows},
          {"tokens", r.ppl.tokens}, {"ppl", r.ppl.ppl}, {"ppl_se", r.ppl.ppl_se}, {"mean_nll", r.ppl.mean_nll},
          {"seconds", r.seconds}};
}

int worker(const Options& o) {
  // What the process holds before the stage does anything: the executable and its libraries
  // (the CUDA libraries too, when the bench links them). Subtracted from the peak, it leaves the
  // stage's own memory: weights, KV cache, buffers.
  const std::size_t rss_at_start = current_rss_bytes();
  Model model = load_model(o.model, o.tokenizer);
  const StageEntry& stage = find_stage(o.stage);
  std::vector<Request> reqs;
  if (o.worker == "throughput") {
    reqs = load_requests(model, o, o.max_requests);
  } else if (o.worker == "rate") {
    reqs = load_requests(model, o, requests_at_rate(o.rate, o.qps_requests, o.qps_seconds), true);
    // Poisson arrivals: exponential gaps with mean 1/rate, from a seeded portable generator.
    std::uint64_t state = o.rate_seed * 0x9E3779B97F4A7C15ull + 1;
    double t = 0.0;
    for (auto& r : reqs) {
      state ^= state >> 12;
      state ^= state << 25;
      state ^= state >> 27;
      const double u = static_cast<double>((state * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
      t += -std::log(1.0 - u) / o.rate;
      r.arrival_s = t;
    }
  } else if (o.worker == "trace") {
    // One request from a short prompt to the end of the context: latency and KV against position.
    const auto first = load_requests(model, o, 1);
    Request r = first.front();
    r.prompt.resize(std::min<std::size_t>(r.prompt.size(), 4));
    r.max_new_tokens = std::min(o.trace_tokens, model.config().context_length - static_cast<int>(r.prompt.size()));
    reqs = {r};
  } else if (o.worker != "perplexity") {
    throw Error("--worker " + o.worker + ": expected throughput, rate, trace or perplexity");
  }
  EngineOptions eo;
  eo.batch = o.batch;
  eo.stop_tokens = o.worker != "trace";  // the trace must not end early on an end-of-text token
  eo.kv_budget_bytes = kv_budget_bytes(o);
  BuiltEngine built = make_engine(stage, model, eo);
  Engine* engine = built.engine.get();
  if (o.worker == "perplexity") {
    json j = perplexity_of(o, model, *engine);
    j["weight_storage"] = engine->stats().weight_storage;
    j["matmul"] = built.matmul;
    std::cout << j.dump() << "\n";
    return 0;
  }
  // Sequences running at once: the paged engines' scheduler, after every step. The peak says how
  // many were admitted; the mean over steps how many the pool let run (a pool that admits on the
  // prompt's blocks and then preempts reaches a high peak and a low mean).
  std::size_t peak_running = 0, running_sum = 0, steps = 0;
  if (built.paged)
    built.paged->set_step_hook([&](const stage03::Scheduler& s) {
      peak_running = std::max(peak_running, s.running().size());
      running_sum += s.running().size();
      ++steps;
    });
  // Warm up: threads started, buffers allocated, weights touched.
  Request warm = reqs.front();
  warm.max_new_tokens = std::min(warm.max_new_tokens, 4);
  warm.arrival_s = 0.0;
  engine->run({warm}, nullptr);

  peak_running = running_sum = steps = 0;  // not the warm-up's

  Timer wall;
  const auto results = engine->run(reqs, nullptr);
  RunMetrics m = compute_metrics(results, wall.seconds());
  m.stage = stage.name;
  m.model = o.model;
  m.weight_bytes = model.weights.bytes();
  m.engine = engine->stats();
  json j = metrics_to_json(m);
  // Stage 05 holds its weights in their own format: what a decode step reads is those bytes
  // (the packed ones); the other stages read the fp32 (stage 04: fp16) weights.
  j["weight_bytes_per_step"] =
      m.engine.weight_bytes > 0 ? static_cast<double>(m.engine.weight_bytes) : weight_bytes_per_step(model.weights);
  j["weight_storage"] = m.engine.weight_storage;
  j["matmul"] = built.matmul;
  j["packed_weight_bytes"] = m.engine.weight_bytes;
  j["weights_count"] = model.weights.bytes() / sizeof(float);
  j["kv_bytes_per_token"] =
      built.kv.bytes_per_token > 0 ? built.kv.bytes_per_token : kv_bytes_per_token(model.config());
  j["kv_plan"] = {{"format", built.kv.format},
                  {"element_bytes", built.kv.element_bytes},
                  {"bytes_per_token", built.kv.bytes_per_token},
                  {"block_size", built.kv.block_size},
                  {"blocks", built.kv.blocks}};
  j["peak_running"] = peak_running;
  j["mean_running"] = steps > 0 ? static_cast<double>(running_sum) / static_cast<double>(steps) : 0.0;
  j["rss_at_start_bytes"] = rss_at_start;
  j["backend"] = built.backend;
  if (o.worker == "trace") {
    j["trace"] = {{"prompt_tokens", results[0].prompt_tokens}, {"token_time_s", results[0].token_time_s}};
  }
  std::cout << j.dump() << "\n";
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Orchestrator.

std::string clock_text(double seconds) {
  const long s = std::lround(seconds);
  char b[32];
  if (s >= 60) {
    std::snprintf(b, sizeof b, "%ldm%02lds", s / 60, s % 60);
  } else {
    std::snprintf(b, sizeof b, "%lds", s);
  }
  return b;
}

/// What the orchestrator has done so far, for its progress lines.
struct Progress {
  Timer total;
  int done = 0, planned = 0;
  std::map<std::string, double> last_seconds;  ///< by "<mode> <stage>": how long the last such run took
};

/// Runs one worker and returns its JSON. While it runs, a line every `kHeartbeatS` says what is
/// running, for how long, and how long the previous run of its kind took, so that a long
/// measurement (stage 00 on a long workload: minutes) never leaves the terminal silent.
constexpr double kHeartbeatS = 20.0;

json spawn(const Options& o, Progress& progress, const std::string& mode, const std::string& stage,
           const std::string& extra, const std::string& label) {
  std::string cmd = quote(self_path()) + " --worker " + mode + " --stage " + stage + " --model " + quote(o.model) +
                    " --workload " + quote(o.workload) + " --batch " + std::to_string(o.batch) + " --max-requests " +
                    std::to_string(o.max_requests) + " --qps-requests " + std::to_string(o.qps_requests) +
                    " --qps-seconds " + fmt("%.6f", o.qps_seconds) +
                    " --trace-tokens " + std::to_string(o.trace_tokens) + " --kv-budget-mib " +
                    fmt("%.6f", o.kv_budget_mib) + extra;
  if (!o.ppl_text.empty())
    cmd += " --ppl-text " + quote(o.ppl_text) + " --ppl-ctx " + std::to_string(o.ppl_ctx) + " --ppl-windows " +
           std::to_string(o.ppl_windows);
  if (!o.tokenizer.empty()) cmd += " --tokenizer " + quote(o.tokenizer);
  const std::string kind = mode + " " + stage;
  const auto last = progress.last_seconds.find(kind);
  const std::string previous =
      last == progress.last_seconds.end() ? "" : ", the previous one took " + clock_text(last->second);
  Timer t;
  std::mutex m;
  std::condition_variable cv;
  bool finished = false;
  std::thread heartbeat([&] {
    std::unique_lock lock(m);
    while (!cv.wait_for(lock, std::chrono::duration<double>(kHeartbeatS), [&] { return finished; })) {
      std::fprintf(stderr, "[bench]   ... %s: running for %s%s (bench %s elapsed, %d/%d measurements done)\n",
                   label.c_str(), clock_text(t.seconds()).c_str(), previous.c_str(),
                   clock_text(progress.total.seconds()).c_str(), progress.done, progress.planned);
    }
  });
  auto stop_heartbeat = [&] {
    {
      std::lock_guard lock(m);
      finished = true;
    }
    cv.notify_all();
    heartbeat.join();
  };
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    stop_heartbeat();
    throw Error("bench: cannot start a worker: " + cmd);
  }
  std::string out;
  char buf[65536];
  std::size_t got;
  try {
    while ((got = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, got);
  } catch (...) {  // a joinable heartbeat thread must not be destroyed: that would terminate
    pclose(p);
    stop_heartbeat();
    throw;
  }
  const int status = pclose(p);
  stop_heartbeat();
  if (WIFEXITED(status) && WEXITSTATUS(status) == 3) throw WorkerHitStub{};
  if (status != 0) throw Error("bench: worker failed (" + cmd + "); its error is above");
  progress.last_seconds[kind] = t.seconds();
  progress.done += 1;
  return json::parse(out);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// Which throughput runs of one stage to believe. A busy machine only ever slows a run down, by
/// any amount, so the runs are sorted and the tightest group of `want` of them is taken: they
/// agree when its fastest is at most `factor` times its slowest.
struct Agreement {
  std::vector<std::size_t> runs;  ///< indices of the agreeing runs (every run when none agree)
  double lo = 0.0, hi = 0.0;      ///< tokens/s range of those runs
  bool agree = false;
};

Agreement agreement(const std::vector<double>& tps, int want, double factor) {
  Agreement a;
  if (tps.empty()) return a;
  std::vector<std::size_t> order(tps.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return tps[x] < tps[y]; });
  const std::size_t w = std::min(static_cast<std::size_t>(std::max(want, 1)), tps.size());
  std::size_t best = 0;
  double best_ratio = INFINITY;
  for (std::size_t start = 0; start + w <= order.size(); ++start) {
    const double lo = tps[order[start]], hi = tps[order[start + w - 1]];
    const double ratio = lo > 0.0 ? hi / lo : INFINITY;
    if (ratio < best_ratio) {
      best_ratio = ratio;
      best = start;
    }
  }
  a.agree = best_ratio <= factor;
  if (a.agree) {
    a.runs.assign(order.begin() + static_cast<std::ptrdiff_t>(best),
                  order.begin() + static_cast<std::ptrdiff_t>(best + w));
  } else {
    a.runs = order;
  }
  a.lo = tps[a.runs.front()];
  a.hi = tps[a.runs.front()];
  for (std::size_t i : a.runs) {
    a.lo = std::min(a.lo, tps[i]);
    a.hi = std::max(a.hi, tps[i]);
  }
  return a;
}

std::vector<double> tokens_per_s(const std::vector<json>& runs) {
  std::vector<double> v;
  for (const auto& r : runs) v.push_back(r["tokens_per_s"].get<double>());
  return v;
}

/// The medians over the runs that agree (all of them when none do), and the spread.
json summarize(const std::vector<json>& all, const Options& o) {
  const std::vector<double> tps = tokens_per_s(all);
  const Agreement a = agreement(tps, o.repeat, o.noise_factor);
  std::vector<json> runs;
  for (std::size_t i : a.runs) runs.push_back(all[i]);
  auto med = [&](auto get) {
    std::vector<double> v;
    for (const auto& r : runs) v.push_back(get(r));
    return median(v);
  };
  json s;
  s["tokens_per_s"] = med([](const json& r) { return r["tokens_per_s"].get<double>(); });
  s["spread"] = {{"agree", a.agree},
                 {"factor", o.noise_factor},
                 {"runs", all.size()},
                 {"agreeing_runs", a.agree ? a.runs.size() : 0},
                 {"min_tokens_per_s", a.lo},
                 {"max_tokens_per_s", a.hi},
                 {"all_min_tokens_per_s", *std::min_element(tps.begin(), tps.end())},
                 {"all_max_tokens_per_s", *std::max_element(tps.begin(), tps.end())}};
  s["wall_s"] = med([](const json& r) { return r["wall_s"].get<double>(); });
  s["ttft_mean_s"] = med([](const json& r) { return r["ttft_s"]["mean"].get<double>(); });
  s["ttft_p50_s"] = med([](const json& r) { return r["ttft_s"]["p50"].get<double>(); });
  s["tpot_mean_s"] = med([](const json& r) { return r["tpot_s"]["mean"].get<double>(); });
  s["peak_rss_bytes"] = med([](const json& r) { return r["peak_rss_bytes"].get<double>(); });
  s["rss_at_start_bytes"] = med([](const json& r) { return r["rss_at_start_bytes"].get<double>(); });
  s["peak_rss_above_start_bytes"] =
      med([](const json& r) { return r["peak_rss_bytes"].get<double>() - r["rss_at_start_bytes"].get<double>(); });
  s["kv_bytes_allocated"] = med([](const json& r) { return r["engine"]["kv_bytes_allocated"].get<double>(); });
  s["kv_bytes_used"] = med([](const json& r) { return r["engine"]["kv_bytes_used"].get<double>(); });
  s["decode_gbps"] = med([](const json& r) {
    const double secs = r["engine"]["decode_seconds"].get<double>();
    return secs > 0 ? r["engine"]["decode_bytes"].get<double>() / secs / 1e9 : 0.0;
  });
  const json& first = runs.front();
  s["weight_bytes_per_step"] = first["weight_bytes_per_step"];
  s["backend"] = first["backend"];
  s["slot_steps"] = first["engine"]["slot_steps"];
  s["preemptions"] = first["engine"]["preemptions"];
  s["prefill_tokens"] = first["engine"]["prefill_tokens"];
  s["prefix_hit_tokens"] = first["engine"]["prefix_hit_tokens"];
  s["wasted_slot_steps"] = first["engine"]["wasted_slot_steps"];
  s["generated_tokens"] = first["generated_tokens"];
  s["requests"] = first["requests"].size();
  s["weight_bytes"] = first["weight_bytes"];
  // Stage 05's storage and the paged stages' pool (results written before these carry none).
  s["weight_storage"] = first.value("weight_storage", "");
  s["matmul"] = first.value("matmul", "");
  s["packed_weight_bytes"] = first.value("packed_weight_bytes", 0.0);
  s["weights_count"] = first.value("weights_count", 0.0);
  s["kv_plan"] = first.value("kv_plan", json::object());
  s["peak_running"] = first.value("peak_running", 0);
  s["mean_running"] = first.value("mean_running", 0.0);
  return s;
}

/// How the sweep chose its rates and how many requests each sent, for the table's notes:
/// ", the rates a grid ...; 64 requests per rate" (empty text for old results without the fields).
std::string qps_requests_text(const json& r) {
  std::string t;
  if (r.contains("qps_grid")) {
    const json& g = r["qps_grid"];
    t += "; the rates: " + fmt("%.2g", g["lo"].get<double>()) + " to " + fmt("%.2g", g["hi"].get<double>()) +
         "x the highest throughput-run capacity among the stages (" + fmt("%.1f req/s", g["capacity_rps"].get<double>()) +
         ", requests / wall time with all at t = 0), " + fmt("%.0f%%", 100.0 * g["step"].get<double>()) +
         " apart, rounded to 2 significant digits";
    if (!g["explicit_rates"].empty()) t += ", and " + g["explicit_rates"].dump();
  }
  if (!r.contains("qps_requests")) return t;
  const std::string least = std::to_string(r["qps_requests"].get<int>());
  const double seconds = r.value("qps_seconds", 0.0);
  if (seconds > 0)
    t += "; max(" + least + ", " + fmt("%g", seconds) + " s x rate) requests per rate, so that above capacity a queue " +
         "builds for long enough to show (the workload cycled past its own requests: pass k without the first k " +
         "words of each prompt, so the prefix cache gains nothing from repeats)";
  else
    t += "; " + least + " requests per rate";
  return t;
}

/// QPS at the SLO of `s` over that of `ref`: "1.25x"; "-" when either is only a bound (the
/// sweep never met or never missed the SLO) or `ref` met it at no rate.
std::string qps_ratio_cell(const json& s, const json& ref) {
  auto exact = [](const json& x) {
    const json& sweep = x["qps"]["sweep"];
    const double best = x["qps"]["max_rate_meeting_slo"].get<double>();
    return best > 0.0 && !sweep.back()["meets_slo"].get<bool>();
  };
  if (!s.contains("qps") || !ref.contains("qps") || !exact(s) || !exact(ref)) return "-";
  return fmt("%.2fx", s["qps"]["max_rate_meeting_slo"].get<double>() / ref["qps"]["max_rate_meeting_slo"].get<double>());
}

// "12.5" req/s; ">= 40.0" when even the highest rate tried met the SLO; "< 0.3" when none did.
std::string qps_cell(const json& s) {
  if (!s.contains("qps")) return "-";
  const json& sweep = s["qps"]["sweep"];
  const double best = s["qps"]["max_rate_meeting_slo"].get<double>();
  if (best == 0.0) return "< " + fmt("%.2f", sweep.front()["rate"].get<double>());
  if (sweep.back()["meets_slo"].get<bool>()) return ">= " + fmt("%.2f", best);
  return fmt("%.2f", best);
}

/// "4411 (4386-4503)"; "**noisy**: 1286 (40-1727 over 7 runs)" when no `repeat` runs agreed.
std::string throughput_cell(const json& m, int repeat) {
  const json& sp = m["spread"];
  const std::string median = fmt("%.0f", m["tokens_per_s"].get<double>());
  const long runs = sp["runs"].get<long>();
  if (!sp["agree"].get<bool>()) {
    return "**noisy**: " + median + " (" + fmt("%.0f", sp["all_min_tokens_per_s"].get<double>()) + "–" +
           fmt("%.0f", sp["all_max_tokens_per_s"].get<double>()) + " over " + std::to_string(runs) + " runs)";
  }
  if (runs == 1) return median;
  std::string cell = median + " (" + fmt("%.0f", sp["min_tokens_per_s"].get<double>()) + "–" +
                     fmt("%.0f", sp["max_tokens_per_s"].get<double>());
  if (runs > repeat)
    cell += "; " + std::to_string(sp["agreeing_runs"].get<long>()) + " of " + std::to_string(runs) + " runs";
  return cell + ")";
}

bool noisy(const json& stage) {
  return !stage["median"]["spread"]["agree"].get<bool>();
}

/// "q4_0 (converted at load) + ...": the weights as the stage holds them; stages 00-03 hold fp32
/// and stage 04 fp16 (their fixed storage).
std::string storage_of(const json& s) {
  const std::string held = s["median"].value("weight_storage", "");
  const std::string matmul = s["median"].value("matmul", "");
  // The block formats' kernel (stage 05's --matmul) matters to their speed: say which ran.
  if (!held.empty())
    return held + (matmul.empty() || held.find("q") == std::string::npos ? "" : "; --matmul " + matmul);
  return s["id"].get<std::string>().rfind("04", 0) == 0 ? "fp16" : "fp32";
}

/// Bytes of the weights as held: stage 05's packed bytes, else fp32 (stage 04: fp16) of every weight.
double held_weight_bytes(const json& s) {
  const json& m = s["median"];
  if (m.value("packed_weight_bytes", 0.0) > 0) return m["packed_weight_bytes"].get<double>();
  const double fp32 = m["weight_bytes"].get<double>();
  return s["id"].get<std::string>().rfind("04", 0) == 0 ? fp32 / 2 : fp32;
}

/// Speed beside quality, one row per stage, when the run measured perplexity (--ppl-text) or
/// ran a stage 05 format: the weights as held, their bytes, tokens/s, the decode bytes/s of those
/// bytes against the read bandwidth, PPL.
std::string formats_table(const json& r) {
  const json& stages = r["stages"];
  bool any = false;
  const json* first_ppl = nullptr;
  for (const auto& s : stages) {
    const std::string id = s["id"].get<std::string>();
    // Perplexity was measured, or one of stage 05's weight formats ran (not only its K/V entries).
    any = any || s.contains("perplexity") || (id.rfind("05-", 0) == 0 && id.rfind("05-kv-", 0) != 0);
    if (!first_ppl && s.contains("perplexity")) first_ppl = &s;
  }
  if (!any) return "";
  const double read_gbps = r["device"]["read_gbps"].get<double>();
  std::string md =
      "\n**Weights: bytes, speed and quality.** Weight bytes as the stage holds them (stage 05: the "
      "packed blocks or codes, norms in fp32), bytes per weight over all " +
      fmt("%.0f", stages.front()["median"].value("weights_count", 0.0)) +
      " weights, the throughput above, decode GB/s of those bytes (plus each row's K/V) against the "
      "measured read bandwidth";
  if (first_ppl) {
    const json& p = (*first_ppl)["perplexity"];
    md += ", and the perplexity of each stage's own engine on **" + p["text"].get<std::string>() +
          "**: " + std::to_string(p["windows"].get<int>()) + " windows of " + std::to_string(p["ctx"].get<int>()) +
          " tokens, each scoring its last " + std::to_string(p["stride"].get<int>()) + " (" +
          std::to_string(p["tokens"].get<long>()) +
          " tokens scored; teacher-forced Engine::logits, stages/05_quantization/quality.h; ± is the standard error "
          "of the delta method, a lower bound since neighbouring tokens correlate)";
  }
  md +=
      ".\n\n| stage | weights held | weight MiB | bytes/weight | throughput (tok/s) | decode GB/s (share of read BW) "
      "| PPL ± SE | PPL vs " +
      (first_ppl ? (*first_ppl)["id"].get<std::string>() : std::string("-")) +
      " |\n|---|---|---|---|---|---|---|---|\n";
  for (const auto& s : stages) {
    const json& m = s["median"];
    const double bytes = held_weight_bytes(s), count = m.value("weights_count", 0.0);
    const double gbps = m["decode_gbps"].get<double>();
    std::string ppl = "-", delta = "-";
    if (s.contains("perplexity")) {
      const json& p = s["perplexity"];
      ppl = fmt("%.3f", p["ppl"].get<double>()) + " ± " + fmt("%.3f", p["ppl_se"].get<double>());
      const double base = (*first_ppl)["perplexity"]["ppl"].get<double>();
      delta = &s == first_ppl ? std::string("-") : fmt("%+.2f%%", 100.0 * (p["ppl"].get<double>() / base - 1.0));
    }
    md += "| " + s["stage"].get<std::string>() + " | " + storage_of(s) + " | " + fmt("%.1f", bytes / (1 << 20)) +
          " | " + (count > 0 ? fmt("%.3f", bytes / count) : std::string("-")) + " | " +
          throughput_cell(m, r["repeat"].get<int>()) + " | " +
          (gbps > 0 ? fmt("%.1f", gbps) + fmt(" (%.0f%%)", 100.0 * gbps / read_gbps) : std::string("-")) + " | " + ppl +
          " | " + delta + " |\n";
  }
  return md;
}

/// The paged stages under one KV byte budget (--kv-budget-mib): the tokens each format's pool
/// holds, how many sequences ran at once and how often one was preempted, and the QPS at the SLO.
std::string kv_budget_table(const json& r) {
  const double budget = r.value("kv_budget_mib", 0.0);
  if (!(budget > 0)) return "";
  const bool sweep = r["stages"].front().contains("qps");
  // The QPS ratios against the wide formats (f32 and f16 K/V), when the run has them.
  std::vector<const json*> refs;
  std::string ratio_header;
  for (const auto* f : {"f32", "f16"})
    for (const auto& s : r["stages"])
      if (s["median"].value("kv_plan", json::object()).value("format", "") == f) {
        refs.push_back(&s);
        ratio_header += std::string(ratio_header.empty() ? "" : " / ") + f + " KV";
        break;
      }
  const bool ratios = sweep && !refs.empty();
  std::string md = "\n**KV cache at the same byte budget: " + fmt("%.2f MiB", budget) +
                   "** for every paged stage, in its own K/V format (blocks of " +
                   std::to_string(r["stages"].front()["median"]["kv_plan"].value("block_size", 0)) +
                   " tokens; int8/fp8 pay for their fp32 scale per token, layer and KV head too). Running: sequences "
                   "in a step, the mean over the run's steps and the peak (admission takes a prompt's blocks, so "
                   "a small pool reaches a high peak and then preempts); preemptions: sequences sent back to the "
                   "queue to free blocks. "
                   "Throughput run: every request at t = 0";
  if (sweep) {
    const json& last = r["stages"].front()["qps"]["sweep"].back();
    md += "; at " + fmt("%.2f req/s", last["rate"].get<double>()) + ": the highest Poisson rate of the sweep";
  }
  md +=
      ".\n\n| stage | K/V format | bytes/token | blocks (tokens) | throughput (tok/s) | running mean / peak, "
      "preemptions (throughput run) |" +
      std::string(sweep ? " running mean / peak, preemptions, p90 TTFT (ms) at the highest rate | QPS at SLO |" : "") +
      (ratios ? " QPS at SLO vs " + ratio_header + " |" : "") + "\n|---|---|---|---|---|---|" +
      (sweep ? "---|---|" : "") + (ratios ? "---|" : "") + "\n";
  for (const auto& s : r["stages"]) {
    const json& m = s["median"];
    const json plan = m.value("kv_plan", json::object());
    if (plan.value("format", "").empty()) continue;  // stages 00-02: no pool
    const long blocks = plan.value("blocks", 0L);
    md += "| " + s["stage"].get<std::string>() + " | " + plan["format"].get<std::string>() + " | " +
          std::to_string(plan["bytes_per_token"].get<long>()) + " | " + std::to_string(blocks) + " (" +
          std::to_string(blocks * plan["block_size"].get<long>()) + ") | " +
          throughput_cell(m, r["repeat"].get<int>()) + " | " + fmt("%.1f", m.value("mean_running", 0.0)) + " / " +
          std::to_string(m["peak_running"].get<long>()) + ", " + std::to_string(m["preemptions"].get<long>()) + " |";
    if (sweep) {
      const json& last = s["qps"]["sweep"].back();
      md += " " + fmt("%.1f", last.value("mean_running", 0.0)) + " / " +
            std::to_string(last.value("peak_running", 0L)) + ", " + std::to_string(last.value("preemptions", 0L)) +
            ", " + fmt("%.0f", last["p90_ttft_s"].get<double>() * 1e3) + " | " + qps_cell(s) + " |";
    }
    if (ratios) {
      md += " ";
      for (std::size_t k = 0; k < refs.size(); ++k) md += (k ? " / " : "") + qps_ratio_cell(s, *refs[k]);
      md += " |";
    }
    md += "\n";
  }
  return md;
}

std::string markdown(const json& r) {
  const double mib = 1 << 20;
  const int repeat = r["repeat"].get<int>();
  const double factor = r["noise_factor"].get<double>();
  const json& dev = r["device"];
  const double read_gbps = dev["read_gbps"].get<double>();
  const double l3 = dev["l3_bytes"].get<double>();
  std::string md;
  md += "**" + r["workload"]["path"].get<std::string>() + "** (" +
        std::to_string(r["workload"]["requests"].get<int>()) + " requests) on **" +
        r["model"]["path"].get<std::string>() + "** (" + r["model"]["summary"].get<std::string>() + ")  \n";
  md += "Device: " + dev["name"].get<std::string>() + ", measured read bandwidth " + fmt("%.1f GB/s", read_gbps) +
        ", copy " + fmt("%.1f GB/s", dev["copy_gbps"].get<double>()) + " (" +
        std::to_string(dev["bandwidth_threads"].get<int>()) +
        (dev["bandwidth_threads"].get<int>() == 1 ? " thread" : " threads") +
        ", best of the probes before and after the runs)" +
        (l3 > 0 ? ", last-level cache " + fmt("%.0f MiB", l3 / mib) : std::string()) + ". Commit " +
        r["commit"].get<std::string>() + ", " + r["date"].get<std::string>() + ". Batching stages with batch " +
        std::to_string(r["batch"].get<int>()) + ".  \n";
  md += "Throughput: the median of " + std::to_string(repeat) + " runs per stage that agree within " +
        fmt("%.2gx", factor) +
        " (fastest / slowest; their range in brackets). When they do not, the stage runs again, up to " +
        std::to_string(r["max_repeat"].get<int>()) + " runs; a stage that still has no " + std::to_string(repeat) +
        " agreeing runs is marked **noisy** and no ratio is given against it.  \n";
  if (r["stages"].front().contains("qps")) {
    const bool fixed = r.contains("qps_rates") && !r["qps_rates"].empty();
    md += "TTFT and TPOT at light load (Poisson arrivals at the sweep's lowest rate, " +
          fmt("%.2f req/s", r["stages"].front()["light_load"]["rate"].get<double>()) +
          (fixed ? ", the same for every stage" : "") + "); QPS (requests/s): the highest Poisson rate tried, " +
          (fixed ? std::string("of ") + r["qps_rates"].dump() + ","
                 : std::string("at 1/4 to 4x each stage's own capacity,")) +
          " whose p90 TTFT <= " + fmt("%.0f ms", r["slo"]["ttft_ms"].get<double>()) +
          " and p90 TPOT <= " + fmt("%.0f ms", r["slo"]["tpot_ms"].get<double>()) + " (one run per rate" +
          qps_requests_text(r) + ").\n\n";
  } else {
    md +=
        "No QPS sweep in this run: TTFT and TPOT are those of the throughput run, every request queued at t = 0 "
        "(so TTFT includes the wait for the requests ahead).\n\n";
  }
  const json& stages = r["stages"];
  const std::string base_id = stages.front()["id"].get<std::string>();
  md += "| stage | what changed | throughput (tok/s) | vs " + base_id +
        " | vs previous | TTFT p50 / mean (ms) | TPOT mean (ms) | QPS at SLO | decode GB/s (share of read BW) | KV "
        "used / "
        "allocated (MiB) | wasted slot-steps | peak RSS above start (MiB) |\n";
  md += "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  bool in_cache = false, above_probe = false;
  double start_rss = 0.0;
  std::string backends;
  for (std::size_t k = 0; k < stages.size(); ++k) {
    const json& s = stages[k];
    const json& m = s["median"];
    const double tps = m["tokens_per_s"].get<double>();
    auto ratio = [&](const json& against) {
      if (noisy(s) || noisy(against)) return std::string("n/a (noisy)");
      return fmt("%.1fx", tps / against["median"]["tokens_per_s"].get<double>());
    };
    // Without a QPS sweep, the latencies of the throughput run (all requests queued at t = 0).
    const json lat = s.contains("light_load") ? s["light_load"]
                                              : json{{"ttft_mean_s", m["ttft_mean_s"]},
                                                     {"ttft_p50_s", m["ttft_p50_s"]},
                                                     {"tpot_mean_s", m["tpot_mean_s"]}};
    auto ms = [&](const char* key) { return fmt("%.1f", lat[key].get<double>() * 1e3); };
    const double gbps = m["decode_gbps"].get<double>();
    std::string bw_cell = "-";
    if (gbps > 0) {
      bw_cell = fmt("%.1f", gbps) + fmt(" (%.0f%%", 100.0 * gbps / read_gbps);
      const double step_bytes = m["weight_bytes_per_step"].get<double>();
      if (l3 > 0 && step_bytes <= l3) {
        bw_cell += " †";
        in_cache = true;
      } else if (gbps > read_gbps) {
        bw_cell += " ‡";
        above_probe = true;
      }
      bw_cell += ")";
    }
    std::string what = s["what"].get<std::string>();
    const std::string backend = m["backend"].get<std::string>();
    if (s["id"].get<std::string>().rfind("04", 0) == 0) {
      what += "; ran on the " + backend.substr(0, backend.find(' ')) + " backend";
      backends += "- " + s["stage"].get<std::string>() + " ran on: " + backend + ".\n";
    }
    start_rss = std::max(start_rss, m["rss_at_start_bytes"].get<double>());
    md += "| " + s["stage"].get<std::string>() + " | " + what + " | " + throughput_cell(m, repeat) + " | " +
          (k == 0 ? std::string("1.0x") : ratio(stages.front())) + " | " +
          (k == 0 ? std::string("-") : ratio(stages[k - 1])) + " | " + ms("ttft_p50_s") + " / " + ms("ttft_mean_s") +
          " | " + ms("tpot_mean_s") + " | " + qps_cell(s) + " | " + bw_cell + " | " +
          (m["kv_bytes_allocated"].get<double>() > 0
               ? fmt("%.2f", m["kv_bytes_used"].get<double>() / mib) + " / " +
                     fmt("%.2f", m["kv_bytes_allocated"].get<double>() / mib) +
                     fmt(" (%.1f%% unused)",
                         100.0 * (1.0 - m["kv_bytes_used"].get<double>() / m["kv_bytes_allocated"].get<double>()))
               : std::string("-")) +
          " | " +
          (m["slot_steps"].get<long>() > 0 ? std::to_string(m["wasted_slot_steps"].get<long>()) + " of " +
                                                 std::to_string(m["slot_steps"].get<long>())
                                           : std::string("-")) +
          " | " + fmt("%.0f", m["peak_rss_above_start_bytes"].get<double>() / mib) + " |\n";
  }
  // What the columns measured, and what the paged stages count besides.
  std::string notes;
  notes +=
      "- Peak RSS above start: the worker process's peak resident memory minus what it held when it started (" +
      fmt("%.0f MiB", start_rss / mib) +
      ": the executable and its libraries, CUDA's too when the bench links them), so the stage's own weights (fp32 "
      "after loading), KV cache and buffers.\n";
  if (in_cache)
    notes += "- †: the weights one decode step reads fit in the " + fmt("%.0f MiB", l3 / mib) +
             " last-level cache, so decode can read them from there, faster than the DRAM bandwidth measured.\n";
  if (above_probe)
    notes +=
        "- ‡: more than the measured read bandwidth although a step's weights cannot fit in the cache: the probe "
        "read slower than the stage did (the machine was probably busy while it ran); the share is not "
        "reliable.\n";
  notes += backends;
  for (const auto& s : stages) {
    const json& m = s["median"];
    if (!m.contains("prefill_tokens") || m["prefill_tokens"].get<long>() + m["prefix_hit_tokens"].get<long>() == 0)
      continue;
    const long hit = m["prefix_hit_tokens"].get<long>(), prompt = hit + m["prefill_tokens"].get<long>();
    notes += "- " + s["stage"].get<std::string>() + ": prefix cache served " + std::to_string(hit) + " of " +
             std::to_string(prompt) + " prompt tokens" +
             fmt(" (%.0f%%)", 100.0 * static_cast<double>(hit) / static_cast<double>(prompt)) + "; " +
             std::to_string(m["preemptions"].get<long>()) + " preemptions (throughput run).\n";
  }
  md += "\n" + notes;
  md += formats_table(r);
  md += kv_budget_table(r);
  return md;
}

/// "<workload>-<model>", then "-s02-03" when --stages was given and a short hash of every other
/// option that differs from its default, so that runs of different kinds never share a name.
std::string default_name(const Options& o, const std::string& options_key) {
  std::string name =
      std::filesystem::path(o.workload).stem().string() + "-" + std::filesystem::path(o.model).stem().string();
  if (!o.stages.empty()) {
    name += "-s";
    for (std::size_t i = 0; i < o.stages.size(); ++i) name += (i ? "-" : "") + o.stages[i];
  }
  if (!options_key.empty()) {
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (unsigned char c : options_key) h = (h ^ c) * 1099511628211ull;
    char b[16];
    std::snprintf(b, sizeof b, "-%06llx", static_cast<unsigned long long>(h & 0xffffff));
    name += b;
  }
  return name;
}

int orchestrate(const Options& o, const std::string& command, const std::string& options_key) {
  std::vector<StageEntry> chosen;
  for (const auto& s : o.stages) chosen.push_back(find_stage(s));
  if (chosen.empty())
    for (const auto& s : stages())
      if (!s.variant) chosen.push_back(s);
  Model model = load_model(o.model, o.tokenizer);  // fail early on a bad model, and describe it
  const auto requests = load_requests(model, o, o.max_requests);
  const std::string name = o.name.empty() ? default_name(o, options_key) : o.name;
  for (char c : name)
    if (c == '/' || c == '\'' || c == '\0') throw Error("--name '" + name + "': must not contain '/' or quotes");
  const HostInfo host = host_info();
  const std::filesystem::path dir = std::filesystem::path(o.out) / host.device_id;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("--out " + o.out + ": cannot create " + dir.string() + ": " + ec.message());

  Progress progress;
  progress.planned = static_cast<int>(chosen.size()) * o.repeat;
  if (o.qps)
    progress.planned +=
        static_cast<int>(chosen.size() * (o.qps_rates.empty() ? o.qps_fractions.size() : o.qps_rates.size()));
  if (o.trace_tokens > 0)
    for (const auto& st : chosen) progress.planned += st.batches ? 0 : 1;
  if (!o.ppl_text.empty()) progress.planned += static_cast<int>(chosen.size());
  if (o.kv_budget_mib > 0)  // fail before any run when a stage's block does not fit the budget
    for (const auto& st : chosen) (void)kv_plan(st, model.config(), kv_budget_bytes(o));

  std::fprintf(stderr, "[bench] %s: %zu stages, %d measurements planned; results go to %s\n", name.c_str(),
               chosen.size(), progress.planned, dir.c_str());
  std::fprintf(stderr, "[bench] measuring memory bandwidth (%.0f MiB buffers)...\n", o.bandwidth_mib);
  Bandwidth bw = measure_bandwidth(o.bandwidth_mib);
  std::fprintf(stderr, "[bench] read %.1f GB/s, copy %.1f GB/s (%d thread%s)\n", bw.read_gbps, bw.copy_gbps, bw.threads,
               bw.threads == 1 ? "" : "s");

  json result;
  result["name"] = name;
  result["date"] = host.date;
  result["commit"] = host.commit;
  result["command"] = command;
  result["model"] = {{"path", o.model}, {"summary", model.config().summary()}, {"weight_bytes", model.weights.bytes()}};
  long new_tokens = 0;
  for (const auto& r : requests) new_tokens += r.max_new_tokens;
  result["workload"] = {
      {"path", o.workload}, {"requests", static_cast<int>(requests.size())}, {"max_new_tokens_total", new_tokens}};
  result["batch"] = o.batch;
  result["repeat"] = o.repeat;
  result["max_repeat"] = o.max_repeat;
  result["noise_factor"] = o.noise_factor;
  result["slo"] = {{"ttft_ms", o.slo_ttft_ms}, {"tpot_ms", o.slo_tpot_ms}};
  result["qps_rates"] = o.qps_rates;
  result["qps_requests"] = o.qps_requests;
  result["qps_seconds"] = o.qps_seconds;
  result["kv_budget_mib"] = o.kv_budget_mib;

  // Throughput: repeat, alternating the order of the stages so that drift hits them all alike;
  // then more runs, one per round, for the stages whose runs do not yet agree.
  std::vector<std::vector<json>> runs(chosen.size());
  auto measure = [&](std::size_t i) {
    const std::string label = "stage " + chosen[i].name + " throughput run " + std::to_string(runs[i].size() + 1);
    json run = spawn(o, progress, "throughput", chosen[i].id, "", label);
    std::fprintf(stderr, "[bench] %-60s %9.1f tokens/s  (%s; %s elapsed, %d/%d)\n", label.c_str(),
                 run["tokens_per_s"].get<double>(),
                 clock_text(progress.last_seconds["throughput " + chosen[i].id]).c_str(),
                 clock_text(progress.total.seconds()).c_str(), progress.done, progress.planned);
    runs[i].push_back(std::move(run));
  };
  for (int rep = 0; rep < o.repeat; ++rep)
    for (std::size_t k = 0; k < chosen.size(); ++k) measure(rep % 2 == 0 ? k : chosen.size() - 1 - k);
  for (int round = 0;; ++round) {
    std::vector<std::size_t> disagree;
    for (std::size_t i = 0; i < chosen.size(); ++i) {
      const Agreement a = agreement(tokens_per_s(runs[i]), o.repeat, o.noise_factor);
      if (a.agree || static_cast<int>(runs[i].size()) >= o.max_repeat) continue;
      std::fprintf(stderr,
                   "[bench] stage %s: no %d of its %zu runs agree within %.2gx (%.0f-%.0f tokens/s): one more run\n",
                   chosen[i].name.c_str(), o.repeat, runs[i].size(), o.noise_factor, a.lo, a.hi);
      disagree.push_back(i);
    }
    if (disagree.empty()) break;
    progress.planned += static_cast<int>(disagree.size());
    if (round % 2 == 1) std::reverse(disagree.begin(), disagree.end());
    for (std::size_t i : disagree) measure(i);
  }
  std::vector<json> medians;
  for (const auto& r : runs) medians.push_back(summarize(r, o));
  // A grid relative to the highest capacity among the stages, the same rates for every stage:
  // it reaches past the fastest one's capacity, so every stage's QPS at the SLO can bind.
  std::vector<double> shared_rates = o.qps_rates;
  if (o.qps && o.qps_grid.lo > 0.0) {
    double capacity = 0.0;
    for (const auto& m : medians)
      capacity = std::max(capacity, static_cast<double>(requests.size()) / m["wall_s"].get<double>());
    shared_rates = merge_rates(grid_rates(o.qps_grid, capacity), o.qps_rates);
    result["qps_rates"] = shared_rates;
    result["qps_grid"] = {{"lo", o.qps_grid.lo},
                          {"hi", o.qps_grid.hi},
                          {"step", o.qps_grid.step},
                          {"capacity_rps", capacity},
                          {"explicit_rates", o.qps_rates}};
    progress.planned += static_cast<int>(chosen.size() * (shared_rates.size() - o.qps_rates.size()));
    std::fprintf(stderr, "[bench] QPS sweep: %zu rates from %.3g to %.3g req/s (%.2g to %.2gx the highest capacity, %.0f req/s)\n",
                 shared_rates.size(), shared_rates.front(), shared_rates.back(), o.qps_grid.lo, o.qps_grid.hi, capacity);
  }
  result["stages"] = json::array();
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    json s = {{"id", chosen[i].id}, {"stage", chosen[i].name}, {"what", chosen[i].what}};
    s["median"] = medians[i];
    if (!s["median"]["spread"]["agree"].get<bool>())
      std::fprintf(stderr, "[bench] stage %s is noisy: its runs never agreed within %.2gx; no ratio is given for it\n",
                   chosen[i].name.c_str(), o.noise_factor);
    s["runs"] = runs[i];
    for (auto& run : s["runs"]) run.erase("requests");
    if (!o.ppl_text.empty()) {
      const std::string label = "perplexity of stage " + chosen[i].name;
      s["perplexity"] = spawn(o, progress, "perplexity", chosen[i].id, "", label);
      std::fprintf(stderr, "[bench] %-60s PPL %.4f +/- %.4f over %ld tokens (%s; %s elapsed)\n", label.c_str(),
                   s["perplexity"]["ppl"].get<double>(), s["perplexity"]["ppl_se"].get<double>(),
                   s["perplexity"]["tokens"].get<long>(),
                   clock_text(progress.last_seconds["perplexity " + chosen[i].id]).c_str(),
                   clock_text(progress.total.seconds()).c_str());
    }
    // QPS: rates as fractions of this stage's measured capacity (requests per second).
    if (o.qps) {
      const double capacity = static_cast<double>(requests.size()) / s["median"]["wall_s"].get<double>();
      std::vector<double> rates = shared_rates;
      if (rates.empty())
        for (double f : o.qps_fractions) rates.push_back(f * capacity);
      json sweep = json::array();
      double best = 0.0;
      for (double rate : rates) {
        const std::string label = "stage " + chosen[i].name + " at " + fmt("%.2f", rate) + " req/s";
        json run = spawn(o, progress, "rate", chosen[i].id, " --rate " + fmt("%.6f", rate), label);
        const double ttft = run["ttft_s"]["p90"].get<double>(), tpot = run["tpot_s"]["p90"].get<double>();
        const bool ok = ttft * 1e3 <= o.slo_ttft_ms && tpot * 1e3 <= o.slo_tpot_ms;
        if (ok) best = std::max(best, rate);
        std::fprintf(stderr, "[bench] %-45s p90 TTFT %8.1f ms, p90 TPOT %6.1f ms %s (%s; %s elapsed, %d/%d)\n",
                     label.c_str(), ttft * 1e3, tpot * 1e3, ok ? "meets SLO" : "misses SLO",
                     clock_text(progress.last_seconds["rate " + chosen[i].id]).c_str(),
                     clock_text(progress.total.seconds()).c_str(), progress.done, progress.planned);
        sweep.push_back({{"rate", rate},
                         {"requests", run["requests"].size()},
                         {"p90_ttft_s", ttft},
                         {"p90_tpot_s", tpot},
                         {"meets_slo", ok},
                         {"ttft_mean_s", run["ttft_s"]["mean"]},
                         {"ttft_p50_s", run["ttft_s"]["p50"]},
                         {"tpot_mean_s", run["tpot_s"]["mean"]},
                         {"peak_running", run.value("peak_running", 0)},
                         {"mean_running", run.value("mean_running", 0.0)},
                         {"preemptions", run["engine"]["preemptions"]}});
      }
      s["qps"] = {{"capacity_rps", capacity}, {"sweep", sweep}, {"max_rate_meeting_slo", best}};
      s["light_load"] = {{"rate", sweep[0]["rate"]},
                         {"ttft_mean_s", sweep[0]["ttft_mean_s"]},
                         {"ttft_p50_s", sweep[0]["ttft_p50_s"]},
                         {"tpot_mean_s", sweep[0]["tpot_mean_s"]}};
    }
    result["stages"].push_back(std::move(s));
  }

  // Per-token latency and KV memory against position, for the stages without batching.
  if (o.trace_tokens > 0) {
    result["trace"] = json::array();
    for (const auto& st : chosen) {
      if (st.batches) continue;
      json run = spawn(o, progress, "trace", st.id, "", "trace of stage " + st.name);
      std::fprintf(stderr, "[bench] trace of stage %s: %zu tokens (%s; %s elapsed)\n", st.name.c_str(),
                   run["trace"]["token_time_s"].size(), clock_text(progress.last_seconds["trace " + st.id]).c_str(),
                   clock_text(progress.total.seconds()).c_str());
      result["trace"].push_back({{"stage", st.name},
                                 {"prompt_tokens", run["trace"]["prompt_tokens"]},
                                 {"token_time_s", run["trace"]["token_time_s"]},
                                 {"kv_bytes_per_token", run["kv_bytes_per_token"]},
                                 {"kv_bytes_allocated", run["engine"]["kv_bytes_allocated"]}});
    }
  }

  // A second probe at the end: one taken while something else held the machine reads low, and
  // every decode share would then read high.
  const Bandwidth after = measure_bandwidth(o.bandwidth_mib);
  std::fprintf(stderr, "[bench] bandwidth again: read %.1f GB/s, copy %.1f GB/s\n", after.read_gbps, after.copy_gbps);
  result["device"] = {
      {"name", host.cpu_name + ", " + std::to_string(host.threads) + (host.threads == 1 ? " thread" : " threads")},
      {"id", host.device_id},
      {"read_gbps", std::max(bw.read_gbps, after.read_gbps)},
      {"copy_gbps", std::max(bw.copy_gbps, after.copy_gbps)},
      {"read_gbps_probes", {bw.read_gbps, after.read_gbps}},
      {"bandwidth_buffer_mib", bw.buffer_mib},
      {"bandwidth_threads", bw.threads},
      {"l3_bytes", host.l3_bytes},
      {"gpu", stage04::cuda_device_name()}};  // "" without one; stage 04 runs there
  for (auto& s : result["stages"]) {
    s["median"]["decode_share_of_read_bw"] =
        s["median"]["decode_gbps"].get<double>() / std::max(1e-9, result["device"]["read_gbps"].get<double>());
  }

  const std::string md = markdown(result);
  auto write = [&](const std::filesystem::path& path, const std::string& text) {
    std::ofstream f(path);
    f << text;
    if (!f) throw Error("--out " + o.out + ": cannot write " + path.string());
  };
  write(dir / (name + ".json"), result.dump(1) + "\n");
  write(dir / (name + ".md"), md);
  std::cout << md;
  std::fprintf(stderr, "[bench] wrote %s and %s in %s\n", (dir / (name + ".json")).c_str(),
               (dir / (name + ".md")).c_str(), clock_text(progress.total.seconds()).c_str());
  return 0;
}

int run(int argc, char** argv) {
  cxxopts::Options spec("bench", "runs chosen stages on the same model and workload and compares them");
  Options o;
  std::string stages_arg, fractions_arg, rates_arg, grid_arg;
  // clang-format off
  spec.add_options()
    ("model", "model file (GGUF or llama2.c .bin)", cxxopts::value(o.model))
    ("tokenizer", "tokenizer.bin for llama2.c checkpoints", cxxopts::value(o.tokenizer))
    ("workload", "JSONL requests", cxxopts::value(o.workload))
    ("stages", "comma-separated stage ids (default: all)", cxxopts::value(stages_arg))
    ("batch", "batch size of the batching stages", cxxopts::value(o.batch)->default_value("16"))
    ("repeat", "throughput runs per stage that must agree (median)", cxxopts::value(o.repeat)->default_value("3"))
    ("max-repeat", "at most this many throughput runs per stage when its runs disagree", cxxopts::value(o.max_repeat)->default_value("8"))
    ("noise-factor", "runs agree when the fastest is at most this factor above the slowest", cxxopts::value(o.noise_factor)->default_value("1.5"))
    ("max-requests", "use only the first N requests (0 = all)", cxxopts::value(o.max_requests)->default_value("0"))
    ("qps-requests", "requests per QPS-sweep run", cxxopts::value(o.qps_requests)->default_value("16"))
    ("qps-fractions", "sweep rates as fractions of each stage's capacity", cxxopts::value(fractions_arg)->default_value("0.25,0.5,1,2,4"))
    ("qps-rates", "sweep these rates (req/s) for every stage instead of fractions of each one's capacity", cxxopts::value(rates_arg))
    ("qps-grid", "LO,HI,STEP: sweep, for every stage, the rates LO to HI times the highest capacity among the stages, STEP apart (relative, e.g. 0.5,1.6,0.12; with --qps-rates: both; off: none)", cxxopts::value(grid_arg))
    ("qps-seconds", "each sweep run sends max(--qps-requests, this x rate) requests, cycling the workload when it holds fewer (0 = --qps-requests)", cxxopts::value(o.qps_seconds)->default_value("0"))
    ("cycled-workload", "print the workload's first N requests as the sweep cycles it (JSONL, no arrival times) and exit", cxxopts::value(o.cycled_workload)->default_value("0"))
    ("no-qps", "skip the QPS sweep", cxxopts::value<bool>()->default_value("false"))
    ("slo-ttft-ms", "SLO on p90 TTFT", cxxopts::value(o.slo_ttft_ms)->default_value("250"))
    ("slo-tpot-ms", "SLO on p90 TPOT", cxxopts::value(o.slo_tpot_ms)->default_value("50"))
    ("trace-tokens", "tokens generated for the latency-vs-position trace (0 = none)", cxxopts::value(o.trace_tokens)->default_value("255"))
    ("bandwidth-mib", "buffer size of the bandwidth measurement", cxxopts::value(o.bandwidth_mib)->default_value("512"))
    ("kv-budget-mib", "the paged stages' KV pool: this many MiB in each stage's own K/V format (0 = each stage's default)", cxxopts::value(o.kv_budget_mib)->default_value("0"))
    ("ppl-text", "also measure each stage's perplexity on this text (e.g. datasets/eval/heldout_kjv.txt)", cxxopts::value(o.ppl_text))
    ("ppl-ctx", "perplexity windows of this many tokens (at most the model's context), each scoring its last half", cxxopts::value(o.ppl_ctx)->default_value("256"))
    ("ppl-windows", "perplexity over this many windows", cxxopts::value(o.ppl_windows)->default_value("4"))
    ("name", "result name (default: <workload>-<model>[-s<stages>][-<hash of the other options>])", cxxopts::value(o.name))
    ("out", "results folder (git ignores the default; scripts/bench --publish uses docs/results)", cxxopts::value(o.out)->default_value(LLM_BINARY_DIR "/results"))
    ("worker", "internal: run one measurement", cxxopts::value(o.worker))
    ("stage", "internal: the worker's stage", cxxopts::value(o.stage))
    ("rate", "internal: the worker's arrival rate", cxxopts::value(o.rate))
    ("device-id", "print this machine's results folder name (e.g. cpu-amd-epyc-2c) and exit")
    ("h,help", "show this help");
  // clang-format on
  cxxopts::ParseResult r;
  try {
    r = spec.parse(argc, argv);
  } catch (const std::exception& e) {
    throw Error(std::string("bench: ") + e.what());
  }
  if (r.count("help")) {
    std::cout << spec.help() << "\n";
    return 0;
  }
  if (r.count("device-id")) {
    std::cout << host_info().device_id << "\n";
    return 0;
  }
  if (o.cycled_workload < 0 || o.cycled_workload > 10000000)
    throw Error("--cycled-workload " + std::to_string(o.cycled_workload) + ": must be between 0 and 10000000");
  if (o.model.empty() && o.cycled_workload == 0) throw Error("bench: --model is required");
  if (o.workload.empty()) throw Error("bench: --workload is required");
  if (o.cycled_workload > 0) {  // for scripts/bench_serving: the requests of one sweep run, as the worker builds them
    for (const auto& item : cycled_workload(read_workload(o.workload), static_cast<std::size_t>(o.cycled_workload)))
      std::cout << json({{"id", item.id}, {"prompt", item.prompt}, {"max_new_tokens", item.max_new_tokens}})
                       .dump(-1, ' ', true, json::error_handler_t::replace)
                << "\n";
    return 0;
  }
  if (o.batch < 1) throw Error("--batch " + std::to_string(o.batch) + ": must be at least 1");
  if (o.repeat < 1) throw Error("--repeat " + std::to_string(o.repeat) + ": must be at least 1");
  if (o.max_repeat < o.repeat)
    throw Error("--max-repeat " + std::to_string(o.max_repeat) + ": must be at least --repeat (" +
                std::to_string(o.repeat) + ")");
  if (o.max_repeat > 100) throw Error("--max-repeat " + std::to_string(o.max_repeat) + ": at most 100");
  if (!(o.noise_factor >= 1.0) || !std::isfinite(o.noise_factor))
    throw Error("--noise-factor " + fmt("%g", o.noise_factor) + ": must be a number >= 1");
  if (o.trace_tokens < 0) throw Error("--trace-tokens " + std::to_string(o.trace_tokens) + ": must be at least 0");
  if (o.max_requests < 0) throw Error("--max-requests " + std::to_string(o.max_requests) + ": must be at least 0");
  if (!(o.bandwidth_mib >= 1.0 && o.bandwidth_mib <= 65536.0))
    throw Error("--bandwidth-mib " + fmt("%g", o.bandwidth_mib) + ": must be between 1 and 65536");
  if (o.qps_requests < 1) throw Error("--qps-requests " + std::to_string(o.qps_requests) + ": must be at least 1");
  if (!(o.qps_seconds >= 0.0 && o.qps_seconds <= 3600.0))
    throw Error("--qps-seconds " + fmt("%g", o.qps_seconds) + ": must be between 0 and 3600");
  if (!grid_arg.empty() && grid_arg != "off") o.qps_grid = parse_rate_grid("--qps-grid", grid_arg);
  if (!(o.kv_budget_mib >= 0.0 && o.kv_budget_mib <= 1048576.0))
    throw Error("--kv-budget-mib " + fmt("%g", o.kv_budget_mib) + ": must be between 0 and 1048576");
  if (o.ppl_ctx < 4 || o.ppl_ctx > (1 << 20))
    throw Error("--ppl-ctx " + std::to_string(o.ppl_ctx) + ": must be between 4 and 1048576");
  if (o.ppl_windows < 1 || o.ppl_windows > 100000)
    throw Error("--ppl-windows " + std::to_string(o.ppl_windows) + ": must be between 1 and 100000");
  if (!o.ppl_text.empty() && o.worker.empty()) (void)read_ppl_text(o.ppl_text);  // a bad path fails before any run
  o.qps = !r["no-qps"].as<bool>();
  o.stages = split(stages_arg, ',');
  auto positive_list = [](const std::string& flag, const std::string& arg) {
    std::vector<double> out;
    for (const auto& f : split(arg, ',')) {
      double v = 0.0;
      try {
        v = std::stod(f);
      } catch (const std::exception&) {
      }
      if (!(v > 0.0)) throw Error(flag + ": '" + f + "' is not a positive number");
      out.push_back(v);
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  o.qps_fractions = positive_list("--qps-fractions", fractions_arg);
  o.qps_rates = positive_list("--qps-rates", rates_arg);
  if (!o.worker.empty()) {
    if (o.worker == "rate" && !(o.rate > 0.0)) throw Error("--rate must be positive");
    return worker(o);
  }
  std::string command;
  for (int i = 0; i < argc; ++i) command += (i ? " " : "") + std::string(argv[i]);
  // The options that change what is measured, as given: they name the result (default_name).
  std::string options_key;
  const std::vector<std::string> naming = {"batch",         "repeat",       "max-repeat",    "noise-factor",
                                           "max-requests",  "qps-requests", "qps-fractions", "qps-rates",    "qps-grid", "qps-seconds",
                                           "no-qps",        "slo-ttft-ms",  "slo-tpot-ms",   "trace-tokens",
                                           "kv-budget-mib", "ppl-text",     "ppl-ctx",       "ppl-windows"};
  for (const auto& kv : r.arguments())
    if (std::find(naming.begin(), naming.end(), kv.key()) != naming.end())
      options_key += kv.key() + "=" + kv.value() + ";";
  return orchestrate(o, command, options_key);
}

}  // namespace
}  // namespace llm::bench

int main(int argc, char** argv) {
  try {
    return llm::bench::run(argc, argv);
  } catch (const llm::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return llm::kExitBadInput;
  } catch (const llm::NotImplemented& e) {  // in a student tree, as the stages say it
    std::fprintf(stderr, "error: %s (this is a student tree: fill in the exercise)\n", e.what());
    return 3;
  } catch (const llm::bench::WorkerHitStub&) {
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 1;
  }
}
