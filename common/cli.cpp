#include "common/cli.h"

#include <cxxopts.hpp>
#include <iostream>

#include "common/error.h"

namespace llm {

std::optional<CliOptions> parse_cli(int argc, char** argv, const std::string& program, const std::string& description,
                                    int default_batch, bool paged_kv, bool device_backend) {
  cxxopts::Options spec(program, description);
  // clang-format off
  spec.add_options()
    ("model", "model file: GGUF, or llama2.c .bin", cxxopts::value<std::string>())
    ("tokenizer", "tokenizer.bin, for llama2.c checkpoints", cxxopts::value<std::string>()->default_value(""))
    ("prompt", "prompt text", cxxopts::value<std::string>())
    ("max-new-tokens", "tokens to generate", cxxopts::value<int>()->default_value("64"))
    ("temperature", "sampling temperature; 0 = greedy", cxxopts::value<float>()->default_value("0"))
    ("top-k", "sample among the k most likely tokens; 0 = off", cxxopts::value<int>()->default_value("0"))
    ("top-p", "nucleus sampling mass in (0, 1]; 1 = off", cxxopts::value<float>()->default_value("1"))
    ("seed", "random seed for sampling", cxxopts::value<std::uint64_t>()->default_value("42"))
    ("workload", "JSONL file of requests {\"prompt\", \"max_new_tokens\"}", cxxopts::value<std::string>()->default_value(""))
    ("batch", "requests run together, at most (stages 00-01: only 1)", cxxopts::value<int>()->default_value(std::to_string(default_batch)))
    ("json", "print the metrics as JSON", cxxopts::value<bool>()->default_value("false"))
    ("chat", "apply the model's chat template to the prompt", cxxopts::value<bool>()->default_value("false"))
    ("system", "system message for --chat", cxxopts::value<std::string>()->default_value(""))
    ("quiet", "do not stream the generated text", cxxopts::value<bool>()->default_value("false"))
    ("h,help", "show this help");
  if (paged_kv) {
    spec.add_options("paged KV cache")
      ("block-size", "tokens per KV block", cxxopts::value<int>()->default_value("8"))
      ("kv-blocks", "blocks in the KV pool; 0 = enough for --batch sequences of the whole context (at most 256 MiB)", cxxopts::value<int>()->default_value("0"))
      ("token-budget", "tokens per step: decode tokens plus prompt chunks", cxxopts::value<int>()->default_value("256"))
      ("max-queue", "waiting requests at most; more are rejected", cxxopts::value<int>()->default_value("256"))
      ("no-prefix-cache", "do not share cached prompt blocks between requests", cxxopts::value<bool>()->default_value("false"));
  }
  if (device_backend) {
    spec.add_options("GPU")
      ("backend", "auto (CUDA when a GPU is present, else the CPU backend), cuda or cpu", cxxopts::value<std::string>()->default_value("auto"))
      ("kv-memory-fraction", "share of the free device memory to use (weights, activations, KV pool)", cxxopts::value<double>()->default_value("0.9"))
      ("no-cuda-graphs", "launch every decode step's kernels one by one", cxxopts::value<bool>()->default_value("false"));
  }
  // clang-format on
  cxxopts::ParseResult r;
  try {
    r = spec.parse(argc, argv);
  } catch (const cxxopts::exceptions::exception& e) {
    throw Error(std::string(e.what()) + " (see --help)");
  }
  if (r.count("help")) {
    std::cout << spec.help() << std::endl;
    return std::nullopt;
  }
  if (!r.unmatched().empty()) throw Error("unexpected argument '" + r.unmatched().front() + "' (see --help)");

  CliOptions o;
  try {
    if (!r.count("model")) throw Error("--model is required: a GGUF file or a llama2.c .bin (see --help)");
    o.model = r["model"].as<std::string>();
    o.tokenizer = r["tokenizer"].as<std::string>();
    if (r.count("prompt")) {
      o.prompt = r["prompt"].as<std::string>();
      o.prompt_given = true;
    }
    o.max_new_tokens = r["max-new-tokens"].as<int>();
    o.temperature = r["temperature"].as<float>();
    o.top_k = r["top-k"].as<int>();
    o.top_p = r["top-p"].as<float>();
    o.seed = r["seed"].as<std::uint64_t>();
    o.workload = r["workload"].as<std::string>();
    o.batch = r["batch"].as<int>();
    o.json = r["json"].as<bool>();
    o.chat = r["chat"].as<bool>();
    o.system_prompt = r["system"].as<std::string>();
    o.quiet = r["quiet"].as<bool>();
    if (paged_kv) {
      o.block_size = r["block-size"].as<int>();
      o.kv_blocks = r["kv-blocks"].as<int>();
      o.token_budget = r["token-budget"].as<int>();
      o.max_queue = r["max-queue"].as<int>();
      o.no_prefix_cache = r["no-prefix-cache"].as<bool>();
    }
    if (device_backend) {
      o.backend = r["backend"].as<std::string>();
      o.kv_memory_fraction = r["kv-memory-fraction"].as<double>();
      o.cuda_graphs = !r["no-cuda-graphs"].as<bool>();
    }
  } catch (const cxxopts::exceptions::exception& e) {
    throw Error(std::string(e.what()) + " (see --help)");
  }

  auto bad = [](const std::string& flag, const std::string& value, const std::string& why) {
    throw Error(flag + " " + value + ": " + why);
  };
  if (o.max_new_tokens <= 0) bad("--max-new-tokens", std::to_string(o.max_new_tokens), "must be at least 1");
  if (!(o.temperature >= 0.0f) || o.temperature > 100.0f)
    bad("--temperature", std::to_string(o.temperature), "must be between 0 and 100");
  if (o.top_k < 0) bad("--top-k", std::to_string(o.top_k), "must be 0 (off) or positive");
  if (!(o.top_p > 0.0f && o.top_p <= 1.0f)) bad("--top-p", std::to_string(o.top_p), "must be in (0, 1]");
  if (o.batch < 1) bad("--batch", std::to_string(o.batch), "must be at least 1");
  if (o.block_size < 1) bad("--block-size", std::to_string(o.block_size), "must be at least 1");
  if (o.kv_blocks < 0) bad("--kv-blocks", std::to_string(o.kv_blocks), "must be 0 (auto) or positive");
  if (o.token_budget < 1) bad("--token-budget", std::to_string(o.token_budget), "must be at least 1");
  if (o.max_queue < 1) bad("--max-queue", std::to_string(o.max_queue), "must be at least 1");
  if (o.backend != "auto" && o.backend != "cuda" && o.backend != "cpu") bad("--backend", o.backend, "must be auto, cuda or cpu");
  if (!(o.kv_memory_fraction > 0.0 && o.kv_memory_fraction <= 1.0))
    bad("--kv-memory-fraction", std::to_string(o.kv_memory_fraction), "must be in (0, 1]");
  if (o.prompt_given && !o.workload.empty()) throw Error("--prompt and --workload: give one or the other");
  if (!o.prompt_given && o.workload.empty()) throw Error("no input: give --prompt \"text\" or --workload file.jsonl");
  if (o.prompt_given && o.prompt.empty()) bad("--prompt", "\"\"", "the prompt is empty");
  if (!o.system_prompt.empty() && !o.chat) throw Error("--system needs --chat");
  return o;
}

}  // namespace llm
