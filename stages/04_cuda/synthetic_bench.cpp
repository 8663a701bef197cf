// stage04_synthetic: stage 04's speed at the shapes of real models, with random weights made on
// the GPU (no download). Three measurements, each printed and written as one JSON object:
//   decode   batch-B decode: time per step, tokens/s, and (weights + KV bytes read per step) /
//            step time as a share of the measured copy bandwidth (the decode roofline)
//   prefill  one prompt of each length: TTFT and prefill tokens/s
//   chat     datasets/workloads/chat.jsonl's prompt and output lengths (tokenized with the
//            default model, scaled by --chat-scale): throughput, for the HF comparison
//
//   stage04_synthetic --synthetic llama3-8b --decode-batch 1,16 --prefill 1024,4096,16384 --json out.json
#include <algorithm>
#include <cstdio>
#include <cxxopts.hpp>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "common/error.h"
#include "common/timer.h"
#include "common/workload.h"
#include "decode_profile.h"
#include "gpu_engine.h"
#include "packed_weights.h"
#include "synthetic.h"

using json = nlohmann::json;
using namespace llm;

namespace {

std::vector<int> parse_ints(const std::string& s, const char* flag) {
  std::vector<int> v;  // "" is an empty list: that measurement is skipped
  std::size_t at = 0;
  while (at < s.size()) {
    const std::size_t comma = s.find(',', at);
    const std::string item = s.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    try {
      v.push_back(std::stoi(item));
    } catch (const std::exception&) {
      throw Error(std::string(flag) + " " + s + ": '" + item + "' is not a number");
    }
    if (v.back() < 1) throw Error(std::string(flag) + " " + s + ": values must be >= 1");
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return v;
}

std::vector<int> random_prompt(int len, int vocab, std::mt19937& rng) {
  std::vector<int> p(static_cast<std::size_t>(len));
  for (int& t : p) t = static_cast<int>(rng() % static_cast<unsigned>(vocab));
  return p;
}

std::unique_ptr<stage03::ContinuousBatchEngine> engine_for(const ModelWeights& w, int batch, int budget, bool graphs,
                                                          double fraction) {
  stage04::GpuEngineConfig c;
  c.backend = "cuda";
  c.batching.scheduler.max_running = batch;
  c.batching.scheduler.token_budget = budget;
  c.batching.block_size = 16;
  c.cuda.cuda_graphs = graphs;
  c.cuda.memory_fraction = fraction;
  return std::move(stage04::make_gpu_engine(w, {}, c).engine);
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options spec("stage04_synthetic", "stage 04 at real model shapes with random weights on the GPU");
  // clang-format off
  spec.add_options()
    ("synthetic", "model shape: llama3-8b or llama3.2-1b", cxxopts::value<std::string>()->default_value("llama3-8b"))
    ("decode-batch", "batch sizes of the decode measurement", cxxopts::value<std::string>()->default_value("1,16"))
    ("decode-context", "tokens already in each sequence's cache when decode is timed", cxxopts::value<int>()->default_value("512"))
    ("decode-steps", "decode steps timed", cxxopts::value<int>()->default_value("64"))
    ("prefill", "prompt lengths of the prefill measurement", cxxopts::value<std::string>()->default_value("1024,4096,16384"))
    ("chat", "chat workload to run scaled (\"\" = skip)", cxxopts::value<std::string>()->default_value(""))
    ("chat-scale", "multiply the chat workload's prompt and output lengths by this", cxxopts::value<int>()->default_value("4"))
    ("batch", "batch cap of the chat run", cxxopts::value<int>()->default_value("16"))
    ("profile", "print where the time of one decode step goes (per operation) at this batch", cxxopts::value<int>()->default_value("0"))
    ("copy-gbps", "the card's measured copy bandwidth, for the roofline share (kernel_harness measures it)", cxxopts::value<double>()->default_value("0"))
    ("no-cuda-graphs", "launch every kernel", cxxopts::value<bool>()->default_value("false"))
    ("kv-memory-fraction", "share of free device memory to use", cxxopts::value<double>()->default_value("0.9"))
    ("json", "write the results here", cxxopts::value<std::string>()->default_value(""))
    ("h,help", "show this help");
  // clang-format on
  try {
    const auto r = spec.parse(argc, argv);
    if (r.count("help")) {
      std::cout << spec.help() << std::endl;
      return 0;
    }
    ModelWeights w;  // only a config: the CUDA backend generates the weights on the device
    w.config = stage04::synthetic_config(r["synthetic"].as<std::string>());
    // Bad lists are refused before anything is measured (and where there is no GPU too).
    (void)parse_ints(r["decode-batch"].as<std::string>(), "--decode-batch");
    (void)parse_ints(r["prefill"].as<std::string>(), "--prefill");
    const std::string why = stage04::cuda_unavailable_reason();
    if (!why.empty()) {
      std::fprintf(stderr, "stage04_synthetic: %s: nothing to measure\n", why.c_str());
      return 77;
    }
    const bool graphs = !r["no-cuda-graphs"].as<bool>();
    const double fraction = r["kv-memory-fraction"].as<double>();
    const double copy_gbps = r["copy-gbps"].as<double>();
    const ModelConfig& c = w.config;
    const double weight_bytes = static_cast<double>(stage04::packed_weight_bytes(c, c.tied_embeddings));
    const double kv_bytes_per_token = 2.0 * c.n_layers * c.kv_dim() * 2.0;
    json out = {{"model", r["synthetic"].as<std::string>()}, {"config", c.summary()}, {"device", stage04::cuda_device_name()},
                {"cuda_graphs", graphs}, {"weight_bytes", weight_bytes}, {"copy_gbps", copy_gbps}};
    std::mt19937 rng(1);

    // Decode: each sequence has decode-context tokens, then decode-steps tokens are timed.
    const int ctx = r["decode-context"].as<int>(), steps = r["decode-steps"].as<int>();
    for (const int b : parse_ints(r["decode-batch"].as<std::string>(), "--decode-batch")) {
      auto engine = engine_for(w, b, std::max(256, ctx), graphs, fraction);
      std::vector<Request> reqs;
      for (int i = 0; i < b; ++i) {
        Request q;
        q.id = "d" + std::to_string(i);
        q.prompt = random_prompt(ctx, c.vocab_size, rng);
        q.max_new_tokens = steps + 1;
        reqs.push_back(q);
      }
      engine->run({reqs.front()}, nullptr);  // warm-up: graphs captured, buffers touched
      const auto res = engine->run(reqs, nullptr);
      // Decode time: from each request's first token to its last.
      double per_step = 0.0;
      for (const auto& x : res) per_step += (x.token_time_s.back() - x.token_time_s.front()) / (x.tokens.size() - 1);
      per_step /= static_cast<double>(res.size());
      const double bytes = weight_bytes + b * kv_bytes_per_token * (ctx + steps / 2.0);
      const double gbps = bytes / per_step / 1e9;
      std::printf("decode  batch %3d: %8.3f ms/step  %9.1f tokens/s  %7.1f GB/s%s\n", b, per_step * 1e3, b / per_step, gbps,
                  copy_gbps > 0 ? (" (" + std::to_string(static_cast<int>(100 * gbps / copy_gbps)) + "% of copy)").c_str() : "");
      out["decode"].push_back({{"batch", b}, {"context", ctx}, {"step_ms", per_step * 1e3}, {"tokens_per_s", b / per_step},
                               {"bytes_per_step", bytes}, {"gbps", gbps},
                               {"copy_share", copy_gbps > 0 ? gbps / copy_gbps : 0.0}});
    }

    // Where a decode step's time goes, operation by operation (eager, waiting after each).
    if (const int b = r["profile"].as<int>(); b > 0) {
      stage04::CudaOptions co;
      co.max_running = b;
      co.token_budget = std::max(256, ctx);
      co.block_size = 16;
      co.memory_fraction = fraction;
      co.max_useful_blocks = b * ((ctx + 16) / 16 + 1);
      int blocks = 0;
      auto exec = stage04::make_cuda_executor(w, co, &blocks);
      const auto times = stage04::profile_decode_step(*exec, c, b, ctx, 16, blocks);
      double total = 0.0;
      for (const auto& t : times) total += t.seconds;
      std::printf("decode step, batch %d, context %d: %.3f ms (profiled: waiting after every operation)\n", b, ctx, total * 1e3);
      for (const auto& t : times) {
        std::printf("  %-26s %8.3f ms  %5.1f%%\n", t.op.c_str(), t.seconds * 1e3, 100.0 * t.seconds / total);
        out["profile"].push_back({{"op", t.op}, {"ms", t.seconds * 1e3}, {"batch", b}, {"context", ctx}});
      }
    }

    // Prefill: one prompt per length, one output token: TTFT.
    for (const int len : parse_ints(r["prefill"].as<std::string>(), "--prefill")) {
      if (len + 1 > c.context_length) throw Error("--prefill " + std::to_string(len) + ": longer than the context");
      auto engine = engine_for(w, 1, len, graphs, fraction);  // the whole prompt in one step
      Request q;
      q.id = "p";
      q.prompt = random_prompt(len, c.vocab_size, rng);
      q.max_new_tokens = 1;
      engine->run({q}, nullptr);  // warm-up
      const auto res = engine->run({q}, nullptr);
      const double ttft = res[0].token_time_s.front();
      std::printf("prefill %6d tokens: TTFT %8.2f ms  %9.0f tokens/s\n", len, ttft * 1e3, len / ttft);
      out["prefill"].push_back({{"tokens", len}, {"ttft_ms", ttft * 1e3}, {"tokens_per_s", len / ttft}});
    }

    // The chat workload, scaled: what stage 04 serves against what HF generate() serves.
    if (!r["chat"].as<std::string>().empty()) {
      const int scale = r["chat-scale"].as<int>(), batch = r["batch"].as<int>();
      Model lengths_from = load_model(std::string(LLM_SOURCE_DIR) + "/datasets/models/tiny-target.gguf");
      std::vector<Request> reqs;
      for (const auto& item : read_workload(r["chat"].as<std::string>())) {
        Request q;
        q.id = item.id;
        const int plen = static_cast<int>(lengths_from.tokenizer->encode_prompt(item.prompt).size()) * scale;
        q.prompt = random_prompt(plen, c.vocab_size, rng);
        q.max_new_tokens = item.max_new_tokens * scale;
        reqs.push_back(q);
      }
      auto engine = engine_for(w, batch, 256, graphs, fraction);
      engine->run({reqs.front()}, nullptr);
      Timer wall;
      const auto res = engine->run(reqs, nullptr);
      const double s = wall.seconds();
      long tokens = 0;
      for (const auto& x : res) tokens += static_cast<long>(x.tokens.size());
      std::printf("chat x%d: %zu requests, %ld tokens in %.2f s: %.1f tokens/s\n", scale, reqs.size(), tokens, s, tokens / s);
      json lengths = json::array();  // for scripts/hf_baseline.py: the same work for transformers
      for (const auto& q : reqs) lengths.push_back({q.prompt.size(), q.max_new_tokens});
      out["chat"] = {{"scale", scale}, {"batch", batch}, {"requests", reqs.size()}, {"tokens", tokens}, {"seconds", s},
                     {"tokens_per_s", tokens / s}, {"lengths", lengths}};
    }
    if (!r["json"].as<std::string>().empty()) std::ofstream(r["json"].as<std::string>()) << out.dump(2) << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
