// stage05_profile: where a batch-1 decode step of stage 05's CPU backend spends its time, per
// weight format, side by side (the "a third of a step is outside the matmuls").
//
//   stage05_profile --model datasets/models/SmolLM2-135M-Instruct.Q4_1.gguf --weights f32,q8_0,q4_0,fp8
//
// Per format: a cache of --context tokens (one prefill step), then --steps decode steps of one
// sequence, timed as a whole (wall and this process's user CPU time per step: on a shared machine
// the CPU time is the steadier of the two), then one step operation by operation
// (CpuStepExecutor::profile: the shares of the recipe's operations, step_recipe.h).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cxxopts.hpp>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/gguf.h"
#include "common/model_weights.h"
#include "common/run_main.h"
#include "kernels/cpu/parallel.h"
#include "quant_cpu_ops.h"
#include "stages/03_continuous_batching/block_pool.h"

namespace {

double user_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec) + 1e-6 * static_cast<double>(u.ru_utime.tv_usec);
}

int parse_int(const std::string& flag, const std::string& v, int lo, int hi) {
  std::size_t used = 0;
  int n = 0;
  try {
    n = std::stoi(v, &used);
  } catch (...) {
    used = 0;
  }
  if (used != v.size() || n < lo || n > hi)
    throw llm::Error(flag + " " + llm::printable(v) + ": must be an integer from " + std::to_string(lo) + " to " +
                     std::to_string(hi));
  return n;
}

struct Options {
  std::string model;
  std::vector<std::string> weights;
  int context = 64, steps = 50;
  bool help = false;
};

Options parse(int argc, char** argv) {
  cxxopts::Options spec("stage05_profile",
                        "a batch-1 decode step of stage 05's CPU backend per weight format: wall and user CPU ms per "
                        "step, then each operation's share (LLM_THREADS=1 for one thread)");
  std::string model, weights, context, steps;
  // clang-format off
  spec.add_options()
    ("model", "model file (GGUF or llama2.c .bin)", cxxopts::value(model))
    ("weights", "formats, comma-separated: auto|f32|f16|q8_0|q4_0|q4_1|fp8", cxxopts::value(weights)->default_value("f32,q8_0,q4_0"))
    ("context", "tokens in the cache before the measured steps, 1 to 100000", cxxopts::value(context)->default_value("64"))
    ("steps", "decode steps timed per format, 1 to 100000", cxxopts::value(steps)->default_value("50"))
    ("h,help", "show this help");
  // clang-format on
  cxxopts::ParseResult r;
  try {
    r = spec.parse(argc, argv);
  } catch (const std::exception& e) {
    throw llm::Error(std::string("stage05_profile: ") + e.what());
  }
  Options o;
  if (r.count("help")) {
    std::cout << spec.help() << "\n";
    o.help = true;
    return o;
  }
  if (!r.unmatched().empty())
    throw llm::Error("stage05_profile: unexpected argument " + llm::printable(r.unmatched()[0]));
  if (model.empty()) throw llm::Error("--model is required (stage05_profile --help)");
  o.model = model;
  std::stringstream list(weights);
  for (std::string w; std::getline(list, w, ',');) {
    if (!llm::stage05::valid_weights_mode(w))
      throw llm::Error("--weights " + llm::printable(w) + ": must be auto, f32, f16, q8_0, q4_0, q4_1 or fp8");
    o.weights.push_back(w);
  }
  if (o.weights.empty()) throw llm::Error("--weights " + llm::printable(weights) + ": no format named");
  o.context = parse_int("--context", context, 1, 100000);
  o.steps = parse_int("--steps", steps, 1, 100000);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  return llm::run_main([&] {
    const Options o = parse(argc, argv);
    if (o.help) return 0;
    const llm::Model model = llm::load_model(o.model);
    const llm::ModelConfig& c = model.weights.config;
    if (o.context + 1 > c.context_length) throw llm::Error("--context " + std::to_string(o.context) + ": too long");
    std::unique_ptr<llm::GGUFFile> file;
    if (model.format == "gguf") file = std::make_unique<llm::GGUFFile>(model.path);
    std::printf("%s, batch 1, context %d, %d threads; per step: wall ms, user CPU ms (all threads)\n", o.model.c_str(),
                o.context, llm::cpu::thread_count());
    for (const std::string& mode : o.weights) {
      llm::stage05::QuantWeights q = llm::stage05::make_quant_weights(model.weights, file.get(), mode);
      const std::string storage = q.storage;
      auto exec = llm::stage05::make_quant_cpu_executor(model.weights, std::move(q), llm::stage05::MatmulKind::automatic,
                                                        "f16");
      constexpr int kBlock = 16;
      const int blocks = (o.context + 1 + kBlock - 1) / kBlock;
      llm::stage03::BlockPool pool(c, blocks, kBlock, false, exec->kv_element_bytes());
      exec->begin_run(pool);
      std::vector<int> table;
      for (int b = 0; b < blocks; ++b) table.push_back(pool.allocate());
      std::mt19937 rng(3);
      std::vector<int> tokens(static_cast<std::size_t>(o.context)), positions(tokens.size());
      for (int p = 0; p < o.context; ++p) {
        tokens[static_cast<std::size_t>(p)] = static_cast<int>(rng() % static_cast<unsigned>(c.vocab_size));
        positions[static_cast<std::size_t>(p)] = p;
      }
      const std::vector<int> none;
      const llm::stage03::StepRows prompt{table, 0, o.context};
      exec->forward({tokens, positions, none, std::span(&prompt, 1)});
      const std::vector<int> dtoken{tokens.back()}, dposition{o.context}, logit_row{0};
      const llm::stage03::StepRows row{table, o.context, 1};
      const llm::stage03::StepBatch step{dtoken, dposition, logit_row, std::span(&row, 1)};
      (void)exec->forward(step);  // warm-up
      const double cpu0 = user_cpu_seconds();
      const auto t0 = std::chrono::steady_clock::now();
      for (int s = 0; s < o.steps; ++s) (void)exec->forward(step);
      const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / o.steps;
      const double cpu = (user_cpu_seconds() - cpu0) / o.steps;
      // The profile: the median step of five, operation by operation.
      std::vector<llm::stage04::OpTime> times = exec->profile(step);
      for (int r = 1; r < 5; ++r) {
        const auto more = exec->profile(step);
        for (std::size_t i = 0; i < times.size(); ++i) times[i].seconds += more[i].seconds;
      }
      double total = 0.0;
      for (const auto& t : times) total += t.seconds;
      std::printf("\n%-6s %s: %.3f ms/step (%.1f tok/s), user CPU %.3f ms/step\n", mode.c_str(), storage.c_str(),
                  wall * 1e3, 1.0 / wall, cpu * 1e3);
      for (const auto& t : times)
        if (t.seconds > 0) std::printf("  %-26s %5.1f%%\n", t.op.c_str(), 100.0 * t.seconds / total);
    }
    return 0;
  });
}
