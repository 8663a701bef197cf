// bench: runs chosen stages on the same model and workload and measures what each one buys.
//
//   bench --model datasets/models/tiny-target.gguf --workload datasets/workloads/short.jsonl
//
// Per stage: throughput with every request at t = 0 (repeated, stages in alternating order,
// medians), TTFT and TPOT at light load, QPS (a sweep of Poisson arrival rates; the highest rate
// whose p90 TTFT and p90 TPOT meet the SLO), memory (weights, KV allocated and used, peak RSS)
// and decode bytes/s against this machine's measured memory bandwidth. Each measurement runs in
// a fresh child process (this executable with --worker), so peak RSS and caches are its own.
// Writes docs/results/<device>/<name>.json and .md; scripts/plot_bench.py draws the plots.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cxxopts.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "common/forward.h"
#include "common/metrics.h"
#include "common/stage_main.h"
#include "common/timer.h"
#include "host_info.h"
#include "memory_bandwidth.h"
#include "stage_registry.h"
#include "stages/04_cuda/backend.h"

using nlohmann::json;

namespace llm::bench {
namespace {

struct Options {
  std::string model, tokenizer, workload, name, out = "docs/results";
  std::vector<std::string> stages;
  int batch = 16, repeat = 3, max_requests = 0, qps_requests = 16, trace_tokens = 255;
  std::vector<double> qps_fractions;
  std::vector<double> qps_rates;  ///< absolute rates (req/s), the same for every stage; overrides the fractions
  double slo_ttft_ms = 250.0, slo_tpot_ms = 50.0, bandwidth_mib = 512.0;
  bool qps = true;
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

// ---------------------------------------------------------------------------------------------
// Worker: one measurement in this process, printed as one JSON document on stdout.

std::vector<Request> load_requests(const Model& model, const Options& o, int limit) {
  CliOptions cli;
  cli.workload = o.workload;
  std::vector<Request> reqs = build_requests(model, cli);
  if (limit > 0 && static_cast<int>(reqs.size()) > limit) reqs.resize(static_cast<std::size_t>(limit));
  for (auto& r : reqs) r.arrival_s = 0.0;
  return reqs;
}

int worker(const Options& o) {
  Model model = load_model(o.model, o.tokenizer);
  const StageEntry& stage = find_stage(o.stage);
  std::vector<Request> reqs;
  if (o.worker == "throughput") {
    reqs = load_requests(model, o, o.max_requests);
  } else if (o.worker == "rate") {
    reqs = load_requests(model, o, o.qps_requests);
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
  } else {
    throw Error("--worker " + o.worker + ": expected throughput, rate or trace");
  }
  // The trace must not end early on an end-of-text token.
  auto engine = make_engine(stage, model, o.batch, /*stop_tokens=*/o.worker != "trace");
  // Warm up: threads started, buffers allocated, weights touched.
  Request warm = reqs.front();
  warm.max_new_tokens = std::min(warm.max_new_tokens, 4);
  warm.arrival_s = 0.0;
  engine->run({warm}, nullptr);

  Timer wall;
  const auto results = engine->run(reqs, nullptr);
  RunMetrics m = compute_metrics(results, wall.seconds());
  m.stage = stage.name;
  m.model = o.model;
  m.weight_bytes = model.weights.bytes();
  m.engine = engine->stats();
  json j = metrics_to_json(m);
  j["weight_bytes_per_step"] = weight_bytes_per_step(model.weights);
  j["kv_bytes_per_token"] = kv_bytes_per_token(model.config());
  if (o.worker == "trace") {
    j["trace"] = {{"prompt_tokens", results[0].prompt_tokens}, {"token_time_s", results[0].token_time_s}};
  }
  std::cout << j.dump() << "\n";
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Orchestrator.

json spawn(const Options& o, const std::string& mode, const std::string& stage, const std::string& extra) {
  std::string cmd = quote(self_path()) + " --worker " + mode + " --stage " + stage + " --model " + quote(o.model) +
                    " --workload " + quote(o.workload) + " --batch " + std::to_string(o.batch) +
                    " --max-requests " + std::to_string(o.max_requests) + " --qps-requests " +
                    std::to_string(o.qps_requests) + " --trace-tokens " + std::to_string(o.trace_tokens) + extra;
  if (!o.tokenizer.empty()) cmd += " --tokenizer " + quote(o.tokenizer);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw Error("bench: cannot start a worker: " + cmd);
  std::string out;
  char buf[65536];
  std::size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, got);
  const int status = pclose(p);
  if (status != 0) throw Error("bench: worker failed (" + cmd + "); its error is above");
  return json::parse(out);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

json summarize(const std::vector<json>& runs, const Bandwidth& bw) {
  auto med = [&](auto get) {
    std::vector<double> v;
    for (const auto& r : runs) v.push_back(get(r));
    return median(v);
  };
  json s;
  s["tokens_per_s"] = med([](const json& r) { return r["tokens_per_s"].get<double>(); });
  s["wall_s"] = med([](const json& r) { return r["wall_s"].get<double>(); });
  s["ttft_mean_s"] = med([](const json& r) { return r["ttft_s"]["mean"].get<double>(); });
  s["ttft_p50_s"] = med([](const json& r) { return r["ttft_s"]["p50"].get<double>(); });
  s["tpot_mean_s"] = med([](const json& r) { return r["tpot_s"]["mean"].get<double>(); });
  s["peak_rss_bytes"] = med([](const json& r) { return r["peak_rss_bytes"].get<double>(); });
  s["kv_bytes_allocated"] = med([](const json& r) { return r["engine"]["kv_bytes_allocated"].get<double>(); });
  s["kv_bytes_used"] = med([](const json& r) { return r["engine"]["kv_bytes_used"].get<double>(); });
  const double decode_gbps = med([](const json& r) {
    const double secs = r["engine"]["decode_seconds"].get<double>();
    return secs > 0 ? r["engine"]["decode_bytes"].get<double>() / secs / 1e9 : 0.0;
  });
  s["decode_gbps"] = decode_gbps;
  s["decode_share_of_read_bw"] = bw.read_gbps > 0 ? decode_gbps / bw.read_gbps : 0.0;
  s["slot_steps"] = runs.front()["engine"]["slot_steps"];
  s["preemptions"] = runs.front()["engine"]["preemptions"];
  s["prefill_tokens"] = runs.front()["engine"]["prefill_tokens"];
  s["prefix_hit_tokens"] = runs.front()["engine"]["prefix_hit_tokens"];
  s["wasted_slot_steps"] = runs.front()["engine"]["wasted_slot_steps"];
  s["generated_tokens"] = runs.front()["generated_tokens"];
  s["requests"] = runs.front()["requests"].size();
  s["weight_bytes"] = runs.front()["weight_bytes"];
  return s;
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

std::string markdown(const json& r) {
  std::string md;
  md += "**" + r["workload"]["path"].get<std::string>() + "** (" + std::to_string(r["workload"]["requests"].get<int>()) +
        " requests) on **" + r["model"]["path"].get<std::string>() + "** (" + r["model"]["summary"].get<std::string>() +
        ")  \n";
  md += "Device: " + r["device"]["name"].get<std::string>() + ", measured read bandwidth " +
        fmt("%.1f GB/s", r["device"]["read_gbps"].get<double>()) + ", copy " +
        fmt("%.1f GB/s", r["device"]["copy_gbps"].get<double>()) + ". Commit " + r["commit"].get<std::string>() + ", " +
        r["date"].get<std::string>() + ". Medians of " + std::to_string(r["repeat"].get<int>()) +
        " runs; stage 02 with batch " + std::to_string(r["batch"].get<int>()) +
        ". Decode GB/s above the read bandwidth means the weights were served from cache.  \n";
  if (r["stages"].front().contains("qps")) {
    const bool fixed = r.contains("qps_rates") && !r["qps_rates"].empty();
    md += "TTFT and TPOT at light load (Poisson arrivals at the sweep's lowest rate, " +
          fmt("%.2f req/s", r["stages"].front()["light_load"]["rate"].get<double>()) +
          (fixed ? ", the same for every stage" : "") + "); QPS (requests/s): the highest Poisson rate tried, " +
          (fixed ? std::string("of ") + r["qps_rates"].dump() + ",": std::string("at 1/4 to 4x each stage's own capacity,")) +
          " whose p90 TTFT <= " +
          fmt("%.0f ms", r["slo"]["ttft_ms"].get<double>()) + " and p90 TPOT <= " +
          fmt("%.0f ms", r["slo"]["tpot_ms"].get<double>()) + ".\n\n";
  } else {
    md += "No QPS sweep in this run: TTFT and TPOT are those of the throughput run, every request queued at t = 0 "
          "(so TTFT includes the wait for the requests ahead).\n\n";
  }
  md += "| stage | what changed | throughput (tok/s) | vs 00 | vs previous | TTFT p50 / mean (ms) | TPOT mean (ms) | QPS at SLO "
        "| decode GB/s (share of read BW) | KV used / allocated (MiB) | wasted slot-steps | peak RSS (MiB) |\n";
  md += "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  double base = 0.0, prev = 0.0;
  for (const auto& s : r["stages"]) {
    const json& m = s["median"];
    const double tps = m["tokens_per_s"].get<double>();
    if (base == 0.0) base = tps;
    // Without a QPS sweep, the latencies of the throughput run (all requests queued at t = 0).
    const json lat = s.contains("light_load") ? s["light_load"]
                                              : json{{"ttft_mean_s", m["ttft_mean_s"]},
                                                     {"ttft_p50_s", m["ttft_p50_s"]},
                                                     {"tpot_mean_s", m["tpot_mean_s"]}};
    auto ms = [&](const char* key) { return fmt("%.1f", lat[key].get<double>() * 1e3); };
    const double mib = 1 << 20;
    const double gbps = m["decode_gbps"].get<double>();
    md += "| " + s["stage"].get<std::string>() + " | " + s["what"].get<std::string>() + " | " + fmt("%.0f", tps) +
          " | " + fmt("%.1fx", tps / base) + " | " + (prev > 0 ? fmt("%.1fx", tps / prev) : std::string("-")) + " | " +
          ms("ttft_p50_s") + " / " + ms("ttft_mean_s") + " | " + ms("tpot_mean_s") + " | " +
          qps_cell(s) + " | " +
          (gbps > 0 ? fmt("%.1f", gbps) + fmt(" (%.0f%%)", 100.0 * m["decode_share_of_read_bw"].get<double>())
                    : std::string("-")) +
          " | " +
          (m["kv_bytes_allocated"].get<double>() > 0
               ? fmt("%.2f", m["kv_bytes_used"].get<double>() / mib) + " / " +
                     fmt("%.2f", m["kv_bytes_allocated"].get<double>() / mib) +
                     fmt(" (%.1f%% unused)", 100.0 * (1.0 - m["kv_bytes_used"].get<double>() /
                                                                 m["kv_bytes_allocated"].get<double>()))
               : std::string("-")) +
          " | " +
          (m["slot_steps"].get<long>() > 0
               ? std::to_string(m["wasted_slot_steps"].get<long>()) + " of " + std::to_string(m["slot_steps"].get<long>())
               : std::string("-")) +
          " | " + fmt("%.0f", m["peak_rss_bytes"].get<double>() / mib) + " |\n";
    prev = tps;
  }
  // What the paged stages count besides.
  std::string notes;
  for (const auto& s : r["stages"]) {
    const json& m = s["median"];
    if (!m.contains("prefill_tokens") || m["prefill_tokens"].get<long>() + m["prefix_hit_tokens"].get<long>() == 0) continue;
    const long hit = m["prefix_hit_tokens"].get<long>(), prompt = hit + m["prefill_tokens"].get<long>();
    notes += "- " + s["stage"].get<std::string>() + ": prefix cache served " + std::to_string(hit) + " of " +
             std::to_string(prompt) + " prompt tokens" + fmt(" (%.0f%%)", 100.0 * static_cast<double>(hit) / static_cast<double>(prompt)) +
             "; " + std::to_string(m["preemptions"].get<long>()) + " preemptions (throughput run).\n";
  }
  if (!notes.empty()) md += "\n" + notes;
  return md;
}

int orchestrate(const Options& o, const std::string& command) {
  std::vector<StageEntry> chosen;
  for (const auto& s : o.stages) chosen.push_back(find_stage(s));
  if (chosen.empty())
    for (const auto& s : stages())
      if (!s.variant) chosen.push_back(s);
  Model model = load_model(o.model, o.tokenizer);  // fail early on a bad model, and describe it
  const auto requests = load_requests(model, o, o.max_requests);

  std::fprintf(stderr, "[bench] measuring memory bandwidth (%.0f MiB buffers)...\n", o.bandwidth_mib);
  const Bandwidth bw = measure_bandwidth(o.bandwidth_mib);
  std::fprintf(stderr, "[bench] read %.1f GB/s, copy %.1f GB/s\n", bw.read_gbps, bw.copy_gbps);

  json result;
  const HostInfo host = host_info();
  const std::string name =
      o.name.empty() ? std::filesystem::path(o.workload).stem().string() + "-" + std::filesystem::path(o.model).stem().string()
                     : o.name;
  result["name"] = name;
  result["date"] = host.date;
  result["commit"] = host.commit;
  result["command"] = command;
  result["device"] = {{"name", host.cpu_name + ", " + std::to_string(host.threads) + " threads"},
                      {"id", host.device_id},
                      {"read_gbps", bw.read_gbps},
                      {"copy_gbps", bw.copy_gbps},
                      {"bandwidth_buffer_mib", bw.buffer_mib},
                      {"gpu", stage04::cuda_device_name()}};  // "" without one; stage 04 runs there
  result["model"] = {{"path", o.model}, {"summary", model.config().summary()}, {"weight_bytes", model.weights.bytes()}};
  long new_tokens = 0;
  for (const auto& r : requests) new_tokens += r.max_new_tokens;
  result["workload"] = {{"path", o.workload},
                        {"requests", static_cast<int>(requests.size())},
                        {"max_new_tokens_total", new_tokens}};
  result["batch"] = o.batch;
  result["repeat"] = o.repeat;
  result["slo"] = {{"ttft_ms", o.slo_ttft_ms}, {"tpot_ms", o.slo_tpot_ms}};
  result["qps_rates"] = o.qps_rates;
  result["qps_requests"] = o.qps_requests;

  // Throughput: repeat, alternating the order of the stages so that drift hits them all alike.
  std::vector<std::vector<json>> runs(chosen.size());
  for (int rep = 0; rep < o.repeat; ++rep) {
    for (std::size_t k = 0; k < chosen.size(); ++k) {
      const std::size_t i = rep % 2 == 0 ? k : chosen.size() - 1 - k;
      Timer t;
      json run = spawn(o, "throughput", chosen[i].id, "");
      std::fprintf(stderr, "[bench] repeat %d/%d  stage %-20s %9.1f tokens/s  (%.1f s)\n", rep + 1, o.repeat,
                   chosen[i].name.c_str(), run["tokens_per_s"].get<double>(), t.seconds());
      runs[i].push_back(std::move(run));
    }
  }
  result["stages"] = json::array();
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    json s = {{"stage", chosen[i].name}, {"what", chosen[i].what}};
    s["median"] = summarize(runs[i], bw);
    s["runs"] = runs[i];
    for (auto& run : s["runs"]) run.erase("requests");
    // QPS: rates as fractions of this stage's measured capacity (requests per second).
    if (o.qps) {
      const double capacity = static_cast<double>(requests.size()) / s["median"]["wall_s"].get<double>();
      std::vector<double> rates = o.qps_rates;
      if (rates.empty())
        for (double f : o.qps_fractions) rates.push_back(f * capacity);
      json sweep = json::array();
      double best = 0.0;
      for (double rate : rates) {
        Timer t;
        json run = spawn(o, "rate", chosen[i].id, " --rate " + fmt("%.6f", rate));
        const double ttft = run["ttft_s"]["p90"].get<double>(), tpot = run["tpot_s"]["p90"].get<double>();
        const bool ok = ttft * 1e3 <= o.slo_ttft_ms && tpot * 1e3 <= o.slo_tpot_ms;
        if (ok) best = std::max(best, rate);
        std::fprintf(stderr, "[bench] stage %-20s rate %7.2f req/s: p90 TTFT %8.1f ms, p90 TPOT %6.1f ms %s (%.1f s)\n",
                     chosen[i].name.c_str(), rate, ttft * 1e3, tpot * 1e3, ok ? "meets SLO" : "misses SLO",
                     t.seconds());
        sweep.push_back({{"rate", rate}, {"p90_ttft_s", ttft}, {"p90_tpot_s", tpot}, {"meets_slo", ok},
                         {"ttft_mean_s", run["ttft_s"]["mean"]}, {"ttft_p50_s", run["ttft_s"]["p50"]},
                         {"tpot_mean_s", run["tpot_s"]["mean"]}});
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
      Timer t;
      json run = spawn(o, "trace", st.id, "");
      std::fprintf(stderr, "[bench] trace of stage %s: %zu tokens (%.1f s)\n", st.name.c_str(),
                   run["trace"]["token_time_s"].size(), t.seconds());
      result["trace"].push_back({{"stage", st.name},
                                 {"prompt_tokens", run["trace"]["prompt_tokens"]},
                                 {"token_time_s", run["trace"]["token_time_s"]},
                                 {"kv_bytes_per_token", run["kv_bytes_per_token"]},
                                 {"kv_bytes_allocated", run["engine"]["kv_bytes_allocated"]}});
    }
  }

  const std::filesystem::path dir = std::filesystem::path(o.out) / host.device_id;
  std::filesystem::create_directories(dir);
  const std::string md = markdown(result);
  std::ofstream(dir / (name + ".json")) << result.dump(1) << "\n";
  std::ofstream(dir / (name + ".md")) << md;
  std::cout << md;
  std::fprintf(stderr, "[bench] wrote %s and %s\n", (dir / (name + ".json")).c_str(), (dir / (name + ".md")).c_str());
  return 0;
}

int run(int argc, char** argv) {
  cxxopts::Options spec("bench", "runs chosen stages on the same model and workload and compares them");
  Options o;
  std::string stages_arg, fractions_arg, rates_arg;
  // clang-format off
  spec.add_options()
    ("model", "model file (GGUF or llama2.c .bin)", cxxopts::value(o.model))
    ("tokenizer", "tokenizer.bin for llama2.c checkpoints", cxxopts::value(o.tokenizer))
    ("workload", "JSONL requests", cxxopts::value(o.workload))
    ("stages", "comma-separated stage ids (default: all)", cxxopts::value(stages_arg))
    ("batch", "batch size of the batching stages", cxxopts::value(o.batch)->default_value("16"))
    ("repeat", "throughput runs per stage (median)", cxxopts::value(o.repeat)->default_value("3"))
    ("max-requests", "use only the first N requests (0 = all)", cxxopts::value(o.max_requests)->default_value("0"))
    ("qps-requests", "requests per QPS-sweep run", cxxopts::value(o.qps_requests)->default_value("16"))
    ("qps-fractions", "sweep rates as fractions of each stage's capacity", cxxopts::value(fractions_arg)->default_value("0.25,0.5,1,2,4"))
    ("qps-rates", "sweep these rates (req/s) for every stage instead of fractions of each one's capacity", cxxopts::value(rates_arg))
    ("no-qps", "skip the QPS sweep", cxxopts::value<bool>()->default_value("false"))
    ("slo-ttft-ms", "SLO on p90 TTFT", cxxopts::value(o.slo_ttft_ms)->default_value("250"))
    ("slo-tpot-ms", "SLO on p90 TPOT", cxxopts::value(o.slo_tpot_ms)->default_value("50"))
    ("trace-tokens", "tokens generated for the latency-vs-position trace (0 = none)", cxxopts::value(o.trace_tokens)->default_value("255"))
    ("bandwidth-mib", "buffer size of the bandwidth measurement", cxxopts::value(o.bandwidth_mib)->default_value("512"))
    ("name", "result name (default: <workload>-<model>)", cxxopts::value(o.name))
    ("out", "results folder", cxxopts::value(o.out)->default_value("docs/results"))
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
  if (o.model.empty()) throw Error("bench: --model is required");
  if (o.workload.empty()) throw Error("bench: --workload is required");
  if (o.batch < 1) throw Error("--batch " + std::to_string(o.batch) + ": must be at least 1");
  if (o.repeat < 1) throw Error("--repeat " + std::to_string(o.repeat) + ": must be at least 1");
  if (o.qps_requests < 1) throw Error("--qps-requests " + std::to_string(o.qps_requests) + ": must be at least 1");
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
  return orchestrate(o, command);
}

}  // namespace
}  // namespace llm::bench

int main(int argc, char** argv) {
  try {
    return llm::bench::run(argc, argv);
  } catch (const llm::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return llm::kExitBadInput;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 1;
  }
}
