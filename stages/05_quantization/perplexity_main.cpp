// perplexity: how well a stage's engine predicts a text (llama.cpp's llama-perplexity), and how
// far its next-token distributions are from a base run's (its --kl-divergence). See quality.h
// for the windows and the formulas.
//
//   perplexity --model datasets/models/tiny-target.gguf --text datasets/eval/heldout_kjv.txt
//   perplexity ... --stage 01 --save-logits base.bin        # the fp32 reference run
//   perplexity ... --stage 04 --kl-base base.bin            # fp16 storage against it
//   perplexity ... --stage 05 --weights q4_0 --kl-base base.bin
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cxxopts.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "common/gguf.h"
#include "common/model_weights.h"
#include "common/run_main.h"
#include "gpu_engine.h"
#include "kv_engine.h"
#include "quality.h"
#include "quant_engine.h"

namespace {

using llm::Error;

/// What the engine's flags ask for: stage 04's backend, stage 05's storage.
struct EngineChoice {
  std::string stage = "01";
  std::string backend = "cpu";
  std::string weights = "auto", kv_cache = "f16", matmul = "auto";  // stage 05 only
};

/// The engine that scores the text: the one place a stage is chosen. `storage` gets the weights'
/// type as the engine holds them, for the report.
std::unique_ptr<llm::Engine> make_scoring_engine(const EngineChoice& choice, const llm::Model& model,
                                                 std::string& storage) {
  const std::string& stage = choice.stage;
  const std::string& backend = choice.backend;
  if (stage == "01") {
    storage = "fp32";
    return std::make_unique<llm::stage01::KvCacheEngine>(model.weights, model.tokenizer->stop_ids());
  }
  if (stage == "04") {
    llm::stage04::GpuEngineConfig config;
    config.backend = backend;
    config.batching.scheduler.max_running = 1;  // logits() makes its own pool; keep the run's small
    llm::stage04::GpuEngine built = llm::stage04::make_gpu_engine(model.weights, model.tokenizer->stop_ids(), config);
    storage = "fp16 (stage 04 " + built.backend + " backend)";
    return std::move(built.engine);
  }
  if (stage == "05") {
    llm::stage05::QuantEngineConfig config;
    config.stage04.backend = backend;
    config.stage04.batching.scheduler.max_running = 1;
    config.weights = choice.weights;
    config.kv_cache = choice.kv_cache;
    config.matmul = choice.matmul;
    // --weights auto keeps a quantized GGUF's blocks: the file is read again for them.
    std::unique_ptr<llm::GGUFFile> file;
    if (model.format == "gguf") file = std::make_unique<llm::GGUFFile>(model.path);
    llm::stage05::BuiltQuantEngine built =
        llm::stage05::make_quant_engine(model.weights, file.get(), model.tokenizer->stop_ids(), config);
    storage = built.engine->stats().weight_storage + ", KV " + choice.kv_cache + " (stage 05 " + built.backend + ")";
    return std::move(built.engine);
  }
  throw Error("--stage " + llm::printable(stage) + ": must be 01, 04 or 05");
}

/// A whole-text integer flag in [lo, hi].
long long parse_count(const std::string& flag, const std::string& text, long long lo, long long hi) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || end == text.c_str() || *end != '\0' || text[0] == ' ')
    throw Error(flag + " " + (text.empty() ? "\"\"" : llm::printable(text)) + ": not an integer");
  if (errno == ERANGE || v < lo || v > hi)
    throw Error(flag + " " + llm::printable(text) + ": must be between " + std::to_string(lo) + " and " +
                std::to_string(hi));
  return v;
}

std::string read_text(const std::string& path) {
  if (path.empty()) throw Error("--text is required: a UTF-8 text file (e.g. datasets/eval/heldout_kjv.txt)");
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw Error("--text " + llm::printable(path) + ": is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("--text " + llm::printable(path) + ": cannot open");
  std::ostringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  if (text.find_first_not_of(" \t\r\n") == std::string::npos)
    throw Error("--text " + llm::printable(path) + ": empty (no text to score)");
  return text;
}

void print_ppl(const char* what, const llm::stage05::PerplexityStats& p) {
  std::printf("%s: PPL %.4f +/- %.4f over %zu tokens (mean NLL %.5f nats, sd %.5f)\n", what, p.ppl, p.ppl_se, p.tokens,
              p.mean_nll, p.sd_nll);
}

nlohmann::json ppl_json(const llm::stage05::PerplexityStats& p) {
  return {{"tokens", p.tokens}, {"ppl", p.ppl}, {"ppl_se", p.ppl_se}, {"mean_nll", p.mean_nll}, {"sd_nll", p.sd_nll}};
}

int run(int argc, char** argv) {
  cxxopts::Options spec("perplexity",
                        "perplexity of a text under a stage's engine (sliding windows, each scoring its last --stride "
                        "tokens), and KL divergence against a saved base run");
  std::string model_path, tokenizer_path, text_path, ctx_arg, stride_arg, windows_arg, save_path, base_path;
  EngineChoice choice;
  // clang-format off
  spec.add_options()
    ("model", "model file (GGUF or llama2.c .bin)", cxxopts::value(model_path))
    ("tokenizer", "tokenizer.bin for llama2.c checkpoints", cxxopts::value(tokenizer_path))
    ("text", "text file to score (UTF-8)", cxxopts::value(text_path))
    ("ctx", "tokens per window (default: min(512, the model's context))", cxxopts::value(ctx_arg))
    ("stride", "tokens between windows = tokens each scores (default: ctx/2)", cxxopts::value(stride_arg))
    ("max-windows", "score at most this many windows (0 = all that fit)", cxxopts::value(windows_arg)->default_value("0"))
    ("stage", "engine: 01 (stage 01, fp32), 04 (stage 04, fp16 weights) or 05 (stage 05, --weights)", cxxopts::value(choice.stage)->default_value("01"))
    ("backend", "stage 04/05's backend: cpu, cuda or auto", cxxopts::value(choice.backend)->default_value("cpu"))
    ("weights", "stage 05: auto|f32|f16|q8_0|q4_0|q4_1|fp8", cxxopts::value(choice.weights)->default_value("auto"))
    ("kv-cache", "stage 05: f32|f16|int8|fp8", cxxopts::value(choice.kv_cache)->default_value("f16"))
    ("matmul", "stage 05: auto (as the stage: int8 where the CPU has a SIMD int8 path, else fused)|fused|int8", cxxopts::value(choice.matmul)->default_value("auto"))
    ("save-logits", "write each scored token's log-probabilities (the base run for --kl-base)", cxxopts::value(save_path))
    ("kl-base", "compare against a --save-logits file: KL(base || this), top-1 agreement", cxxopts::value(base_path))
    ("json", "print the results as JSON")
    ("h,help", "show this help");
  // clang-format on
  cxxopts::ParseResult r;
  try {
    r = spec.parse(argc, argv);
  } catch (const std::exception& e) {
    throw Error(std::string("perplexity: ") + e.what());
  }
  if (r.count("help")) {
    std::cout << spec.help() << "\n";
    return 0;
  }
  if (!r.unmatched().empty()) throw Error("perplexity: unexpected argument " + llm::printable(r.unmatched()[0]));
  if (model_path.empty()) throw Error("--model is required");
  if (choice.stage != "01" && choice.stage != "04" && choice.stage != "05")
    throw Error("--stage " + llm::printable(choice.stage) + ": must be 01 (fp32), 04 (fp16 weights) or 05 (--weights)");
  if (choice.backend != "cpu" && choice.backend != "cuda" && choice.backend != "auto")
    throw Error("--backend " + llm::printable(choice.backend) + ": must be cpu, cuda or auto");
  for (const char* flag : {"weights", "kv-cache", "matmul"}) {
    if (r.count(flag) && choice.stage != "05")
      throw Error(std::string("--") + flag + " is stage 05's: give --stage 05 (this run is --stage " + choice.stage +
                  ")");
  }
  if (!save_path.empty() && !base_path.empty() && save_path == base_path)
    throw Error("--save-logits and --kl-base are the same file " + llm::printable(save_path));
  const auto max_windows = static_cast<std::size_t>(parse_count("--max-windows", windows_arg, 0, 1 << 30));
  const std::string text = read_text(text_path);  // before the model: a bad text fails fast

  const llm::Model model = llm::load_model(model_path, tokenizer_path);
  const int model_ctx = model.config().context_length, vocab = model.config().vocab_size;
  const int ctx =
      ctx_arg.empty() ? std::min(512, model_ctx) : static_cast<int>(parse_count("--ctx", ctx_arg, 2, 1 << 24));
  if (ctx > model_ctx) {
    throw Error("--ctx " + std::to_string(ctx) + ": larger than the context of " + llm::printable(model_path) + " (" +
                std::to_string(model_ctx) + " tokens)");
  }
  const int stride = stride_arg.empty() ? ctx / 2 : static_cast<int>(parse_count("--stride", stride_arg, 1, ctx - 1));

  // Tokenize only as much as the windows need (a huge text with --max-windows costs little).
  const std::size_t need = llm::stage05::tokens_needed(ctx, stride, max_windows);
  const std::vector<int> tokens =
      need == SIZE_MAX ? model.tokenizer->encode_prompt(text) : model.tokenizer->encode_prompt(text, need);
  const llm::stage05::WindowPlan plan =
      llm::stage05::plan_windows(tokens.size(), ctx, stride, max_windows, "--text " + llm::printable(text_path));

  llm::stage05::LogitsFileHeader header;
  header.vocab = static_cast<std::uint32_t>(vocab);
  header.ctx = static_cast<std::uint32_t>(ctx);
  header.stride = static_cast<std::uint32_t>(stride);
  header.tokens = plan.covered();
  header.scored = plan.scored();
  header.token_hash = llm::stage05::hash_tokens(std::span<const int>(tokens.data(), plan.covered()));
  // The base file is checked before the engine is built or anything is scored.
  std::unique_ptr<llm::stage05::LogitsReader> base;
  if (!base_path.empty()) base = std::make_unique<llm::stage05::LogitsReader>(base_path, header);
  std::string storage;
  const std::unique_ptr<llm::Engine> engine = make_scoring_engine(choice, model, storage);
  // A run that fails part-way leaves a short file, which --kl-base then refuses as truncated.
  std::unique_ptr<llm::stage05::LogitsWriter> save;
  if (!save_path.empty()) save = std::make_unique<llm::stage05::LogitsWriter>(save_path, header);
  llm::stage05::EvalOptions options;
  options.save = save.get();
  options.base = base.get();
  if (model.tokenizer->vocab().add_bos && model.tokenizer->bos_id() >= 0)
    options.window_start_token = model.tokenizer->bos_id();
  const llm::stage05::EvalResult result = llm::stage05::evaluate(*engine, tokens, vocab, plan, options);
  if (save) save->close();

  const double tok_s = result.seconds > 0 ? static_cast<double>(plan.windows * ctx) / result.seconds : 0.0;
  if (r.count("json")) {
    nlohmann::json j = {{"model", model_path},
                        {"text", text_path},
                        {"stage", choice.stage},
                        {"weights", storage},
                        {"ctx", ctx},
                        {"stride", stride},
                        {"windows", plan.windows},
                        {"tokens_covered", plan.covered()},
                        {"perplexity", ppl_json(result.ppl)},
                        {"seconds", result.seconds},
                        {"tokens_per_s", tok_s}};
    if (!save_path.empty()) j["saved_logits"] = save_path;
    if (result.has_kl) {
      const auto& k = result.kl;
      j["kl"] = {{"base", base_path},
                 {"tokens", k.tokens},
                 {"mean_kl", k.mean_kl},
                 {"max_kl", k.max_kl},
                 {"p99_kl", k.p99_kl},
                 {"top1_agreement", k.top1_agreement},
                 {"max_logprob_error", k.max_logprob_error},
                 {"base_perplexity", ppl_json(k.base)}};
    }
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("model %s, stage %s (weights %s), text %s\n", model_path.c_str(), choice.stage.c_str(), storage.c_str(),
              text_path.c_str());
  std::printf(
      "%zu windows of %d tokens, stride %d: %zu tokens scored, of the text's first %zu; %.1f s (%.0f tokens/s)\n",
      plan.windows, ctx, stride, plan.scored(), plan.covered(), result.seconds, tok_s);
  print_ppl("perplexity", result.ppl);
  if (result.has_kl) {
    const auto& k = result.kl;
    print_ppl("base perplexity", k.base);
    std::printf("KL(base || this): mean %.6g, p99 %.6g, max %.6g nats over %zu tokens\n", k.mean_kl, k.p99_kl, k.max_kl,
                k.tokens);
    std::printf("top-1 agreement %.4f%%, max |log p error| %.4g\n", 100.0 * k.top1_agreement, k.max_logprob_error);
  }
  if (!save_path.empty())
    std::printf("log-probabilities of %zu tokens written to %s\n", plan.scored(), save_path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return llm::run_main([&] { return run(argc, argv); });
}
