#include "common/cli.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cxxopts.hpp>
#include <filesystem>
#include <initializer_list>
#include <iostream>

#include "common/checked.h"
#include "common/error.h"

namespace llm {

namespace {

// Numbers are taken from cxxopts as text and converted here, so that a bad value is reported
// with its flag ("--batch two: not an integer") rather than as cxxopts' "Argument 'two' failed
// to parse", and so that no value wraps or becomes NaN on the way in.

/// The integer in `text`, checked against [lo, hi]; the whole text must be the number.
template <typename T>
T parse_integer(const std::string& flag, const std::string& text, T lo, T hi) {
  const char* s = text.c_str();
  char* end = nullptr;
  errno = 0;
  bool out_of_range = false;
  T value{};
  if constexpr (std::is_signed_v<T>) {
    const long long v = std::strtoll(s, &end, 10);
    out_of_range = errno == ERANGE || v < static_cast<long long>(lo) || v > static_cast<long long>(hi);
    value = static_cast<T>(v);
  } else {
    // strtoull accepts "-1" and wraps it: a sign is refused first.
    const bool negative = text.find('-') != std::string::npos;
    const unsigned long long v = std::strtoull(s, &end, 10);
    out_of_range = negative || errno == ERANGE || v < static_cast<unsigned long long>(lo) ||
                   v > static_cast<unsigned long long>(hi);
    value = static_cast<T>(v);
  }
  if (text.empty() || end == s || *end != '\0' || std::isspace(static_cast<unsigned char>(text[0])))
    throw Error(flag + " " + (text.empty() ? "\"\"" : printable(text)) + ": not an integer");
  if (out_of_range) {
    throw Error(flag + " " + text + ": must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  }
  return value;
}

/// The finite number in `text`, in [lo, hi] (lo excluded when lo_open).
double parse_real(const std::string& flag, const std::string& text, double lo, double hi, bool lo_open = false) {
  const char* s = text.c_str();
  char* end = nullptr;
  const double v = std::strtod(s, &end);
  if (text.empty() || end == s || *end != '\0' || std::isspace(static_cast<unsigned char>(text[0])))
    throw Error(flag + " " + (text.empty() ? "\"\"" : printable(text)) + ": not a number");
  if (!std::isfinite(v)) throw Error(flag + " " + text + ": must be a finite number");
  if (v > hi || v < lo || (lo_open && v == lo)) {
    char range[96];
    std::snprintf(range, sizeof range, "%s%g, %g]", lo_open ? "(" : "[", lo, hi);
    throw Error(flag + " " + text + ": must be in " + range);
  }
  return v;
}

/// A path flag: given, not empty, and not a directory (a file that does not exist is the
/// reader's to report, with its own message).
void check_path(const std::string& flag, const std::string& path) {
  if (path.empty()) throw Error(flag + " is empty: give a file name");
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw Error(flag + " " + printable(path) + ": is a directory, not a file");
}

}  // namespace

std::optional<CliOptions> parse_cli(int argc, char** argv, const std::string& program, const std::string& description,
                                    int default_batch, bool paged_kv, bool device_backend, bool quantization,
                                    bool speculative) {
  cxxopts::Options spec(program, description);
  using text = std::string;
  // clang-format off
  spec.add_options()
    ("model", "model file: GGUF, or llama2.c .bin", cxxopts::value<text>())
    ("tokenizer", "tokenizer.bin, for llama2.c checkpoints", cxxopts::value<text>()->default_value(""))
    ("prompt", "prompt text", cxxopts::value<text>())
    ("max-new-tokens", "tokens to generate, 1 to " + std::to_string(CliLimits::max_new_tokens) + " (lowered to fit the context)", cxxopts::value<text>()->default_value("64"))
    ("temperature", "sampling temperature, 0 to 100; 0 = greedy", cxxopts::value<text>()->default_value("0"))
    ("top-k", "sample among the k most likely tokens; 0 = off", cxxopts::value<text>()->default_value("0"))
    ("top-p", "nucleus sampling mass in (0, 1]; 1 = off", cxxopts::value<text>()->default_value("1"))
    ("seed", "random seed for sampling, 0 to 2^64-1", cxxopts::value<text>()->default_value("42"))
    ("workload", "JSONL file of requests {\"prompt\", \"max_new_tokens\"}", cxxopts::value<text>()->default_value(""))
    ("batch", "requests run together, at most (stages 00-01: only 1)", cxxopts::value<text>()->default_value(std::to_string(default_batch)))
    ("json", "print the metrics as JSON", cxxopts::value<bool>()->default_value("false"))
    ("chat", "apply the model's chat template to the prompt", cxxopts::value<bool>()->default_value("false"))
    ("system", "system message for --chat", cxxopts::value<text>()->default_value(""))
    ("quiet", "do not stream the generated text", cxxopts::value<bool>()->default_value("false"))
    ("h,help", "show this help");
  if (paged_kv) {
    spec.add_options("paged KV cache")
      ("block-size", "tokens per KV block, 1 to " + std::to_string(CliLimits::block_size), cxxopts::value<text>()->default_value("8"))
      ("kv-blocks", "blocks in the KV pool; 0 = enough for --batch sequences of the whole context (at most 256 MiB)", cxxopts::value<text>()->default_value("0"))
      ("token-budget", "tokens per step: decode tokens plus prompt chunks", cxxopts::value<text>()->default_value("256"))
      ("max-queue", "waiting requests at most; more are rejected", cxxopts::value<text>()->default_value("256"))
      ("no-prefix-cache", "do not share cached prompt blocks between requests", cxxopts::value<bool>()->default_value("false"));
  }
  if (device_backend) {
    spec.add_options("GPU")
      ("backend", "auto (CUDA when a GPU is present, else the CPU backend), cuda or cpu", cxxopts::value<text>()->default_value("auto"))
      ("kv-memory-fraction", "share of the free device memory to use (weights, activations, KV pool)", cxxopts::value<text>()->default_value("0.9"))
      ("no-cuda-graphs", "launch every decode step's kernels one by one", cxxopts::value<bool>()->default_value("false"));
  }
  if (quantization) {
    spec.add_options("quantization")
      ("weights", "weight storage: auto (as stored in the file), f32, f16, q8_0, q4_0, q4_1 or fp8 (E4M3, a scale per row)", cxxopts::value<text>()->default_value("auto"))
      ("kv-cache", "K/V cache storage: f32, f16, int8 or fp8 (E4M3); int8/fp8 with a scale per token and KV head", cxxopts::value<text>()->default_value("f16"))
      ("matmul", "quantized matmul: auto (the fastest here: int8 when the CPU has AVX2 or VNNI, else fused), fused (dequantize in registers, fp32 activations) or int8 (activations quantized to int8 per block of 32, weights repacked at load)", cxxopts::value<text>()->default_value("auto"));
  }
  if (speculative) {
    spec.add_options("speculative decoding")
      ("speculate", "proposer: none, draft (--draft-model), ngram (prompt lookup) or layerskip (the target's first --draft-layers layers)", cxxopts::value<text>()->default_value("none"))
      ("draft-model", "draft GGUF with the target's vocabulary and at least its context", cxxopts::value<text>()->default_value(""))
      ("spec-k", "proposals per sequence and step, 0 to " + std::to_string(CliLimits::spec_k) + ", or auto (0 to 8, chosen every step from the measured acceptance and step times)", cxxopts::value<text>()->default_value("4"))
      ("draft-layers", "layers of the layerskip draft, 1 to the target's - 1; 0 = half", cxxopts::value<text>()->default_value("0"));
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
  using L = CliLimits;
  try {
    if (!r.count("model")) throw Error("--model is required: a GGUF file or a llama2.c .bin (see --help)");
    o.model = r["model"].as<text>();
    if (o.model.empty()) throw Error("--model is empty: give a GGUF file or a llama2.c .bin");
    check_path("--model", o.model);
    o.tokenizer = r["tokenizer"].as<text>();
    if (r.count("tokenizer")) check_path("--tokenizer", o.tokenizer);
    if (r.count("prompt")) {
      o.prompt = r["prompt"].as<text>();
      o.prompt_given = true;
    }
    auto integer = [&](const char* name, int lo, int hi) {
      return parse_integer<int>(std::string("--") + name, r[name].as<text>(), lo, hi);
    };
    o.max_new_tokens = integer("max-new-tokens", 1, L::max_new_tokens);
    o.temperature = static_cast<float>(parse_real("--temperature", r["temperature"].as<text>(), 0.0, 100.0));
    o.top_k = integer("top-k", 0, L::top_k);
    o.top_p = static_cast<float>(parse_real("--top-p", r["top-p"].as<text>(), 0.0, 1.0, /*lo_open=*/true));
    o.seed = parse_integer<std::uint64_t>("--seed", r["seed"].as<text>(), 0, UINT64_MAX);
    o.workload = r["workload"].as<text>();
    if (r.count("workload")) check_path("--workload", o.workload);
    o.batch = integer("batch", 1, L::batch);
    o.json = r["json"].as<bool>();
    o.chat = r["chat"].as<bool>();
    o.system_prompt = r["system"].as<text>();
    o.quiet = r["quiet"].as<bool>();
    if (paged_kv) {
      o.block_size = integer("block-size", 1, L::block_size);
      o.kv_blocks = integer("kv-blocks", 0, L::kv_blocks);
      o.token_budget = integer("token-budget", 1, L::token_budget);
      o.max_queue = integer("max-queue", 1, L::max_queue);
      o.no_prefix_cache = r["no-prefix-cache"].as<bool>();
    }
    if (device_backend) {
      o.backend = r["backend"].as<text>();
      o.kv_memory_fraction =
          parse_real("--kv-memory-fraction", r["kv-memory-fraction"].as<text>(), 0.0, 1.0, /*lo_open=*/true);
      o.cuda_graphs = !r["no-cuda-graphs"].as<bool>();
    }
    if (quantization) {
      o.weights = r["weights"].as<text>();
      o.kv_cache = r["kv-cache"].as<text>();
      o.matmul = r["matmul"].as<text>();
    }
    if (speculative) {
      o.speculate = r["speculate"].as<text>();
      o.draft_model = r["draft-model"].as<text>();
      if (r.count("draft-model")) check_path("--draft-model", o.draft_model);
      o.spec_k_auto = r["spec-k"].as<text>() == "auto";
      o.spec_k = o.spec_k_auto ? 8 : integer("spec-k", 0, L::spec_k);
      o.draft_layers = integer("draft-layers", 0, L::draft_layers);
    }
  } catch (const cxxopts::exceptions::exception& e) {
    throw Error(std::string(e.what()) + " (see --help)");
  }

  if (o.backend != "auto" && o.backend != "cuda" && o.backend != "cpu")
    throw Error("--backend " + printable(o.backend) + ": must be auto, cuda or cpu");
  const auto one_of = [](const std::string& v, std::initializer_list<const char*> allowed) {
    return std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return v == a; });
  };
  if (!one_of(o.weights, {"auto", "f32", "f16", "q8_0", "q4_0", "q4_1", "fp8"}))
    throw Error("--weights " + printable(o.weights) + ": must be auto, f32, f16, q8_0, q4_0, q4_1 or fp8");
  if (!one_of(o.kv_cache, {"f32", "f16", "int8", "fp8"}))
    throw Error("--kv-cache " + printable(o.kv_cache) + ": must be f32, f16, int8 or fp8");
  if (!one_of(o.matmul, {"auto", "fused", "int8"}))
    throw Error("--matmul " + printable(o.matmul) + ": must be auto, fused or int8");
  if (!one_of(o.speculate, {"none", "draft", "ngram", "layerskip"}))
    throw Error("--speculate " + printable(o.speculate) + ": must be none, draft, ngram or layerskip");
  if (o.speculate == "draft" && o.draft_model.empty()) throw Error("--speculate draft needs --draft-model FILE");
  if (o.speculate != "draft" && !o.draft_model.empty())
    throw Error("--draft-model " + printable(o.draft_model) + ": only used with --speculate draft");
  if (o.prompt_given && !o.workload.empty()) throw Error("--prompt and --workload: give one or the other");
  if (!o.prompt_given && o.workload.empty()) throw Error("no input: give --prompt \"text\" or --workload file.jsonl");
  if (o.prompt_given && o.prompt.empty()) throw Error("--prompt \"\": the prompt is empty");
  if (!o.system_prompt.empty() && !o.chat) throw Error("--system needs --chat");
  return o;
}

}  // namespace llm
