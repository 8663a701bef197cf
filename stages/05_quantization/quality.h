// quality.h: how good a model's predictions are on a text, and how far a run's distributions are
// from a reference run's: perplexity over sliding windows (llama.cpp's llama-perplexity) and the
// KL divergence against a saved base run (its --kl-divergence), on any stage's Engine::logits.
//
// Windows: window w covers tokens [w*stride, w*stride + ctx) and scores only its last `stride`
// positions, so every scored token sees at least ctx - stride tokens before it (a token at the
// start of a window, with almost no context, would inflate the perplexity). Consecutive windows
// overlap by ctx - stride tokens and score disjoint ranges: every token from position
// ctx - stride on is scored exactly once, up to the last whole window.
//
// Perplexity: PPL = exp(mean NLL) over the N scored tokens, NLL = -log p(token | the ones before).
// Its standard error, by the delta method (d exp(x) = exp(x) dx): SE(PPL) = PPL * sd(NLL) /
// sqrt(N), sd with N - 1. Neighbouring tokens' NLLs are correlated, so it is a lower bound.
#pragma once

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "common/engine.h"

namespace llm::stage05 {

/// Sliding windows over a token sequence (see the file comment).
struct WindowPlan {
  int ctx = 0;              ///< tokens per window
  int stride = 0;           ///< tokens between window starts = tokens each window scores
  std::size_t windows = 0;  ///< whole windows that fit (at most --max-windows)
  /// Tokens the windows cover: (windows - 1) * stride + ctx.
  std::size_t covered() const { return windows == 0 ? 0 : (windows - 1) * static_cast<std::size_t>(stride) + ctx; }
  /// Tokens scored: windows * stride.
  std::size_t scored() const { return windows * static_cast<std::size_t>(stride); }
};

/// The windows over n_tokens. max_windows 0 = as many as fit. Throws llm::Error (naming --ctx,
/// --stride and `source`, the text) for ctx < 2, stride outside [1, ctx - 1], or a text of
/// fewer than ctx tokens (not one window).
WindowPlan plan_windows(std::size_t n_tokens, int ctx, int stride, std::size_t max_windows, const std::string& source);

/// The tokens a plan needs at most: ctx + (max_windows - 1) * stride (max_windows 0: unbounded).
std::size_t tokens_needed(int ctx, int stride, std::size_t max_windows);

/// out[v] = log softmax(logits)[v], computed in double: logits and out are [vocab].
void log_softmax(const float* logits, int vocab, float* out);
/// -log softmax(logits)[target] in double (max-shifted log-sum-exp): logits is [vocab].
double token_nll(const float* logits, int vocab, int target);

/// Perplexity of a set of scored tokens.
struct PerplexityStats {
  std::size_t tokens = 0;  ///< N, scored tokens
  double mean_nll = 0.0;   ///< nats per token
  double sd_nll = 0.0;     ///< standard deviation of the per-token NLL (N - 1 in the divisor)
  double ppl = 0.0;        ///< exp(mean_nll)
  double ppl_se = 0.0;     ///< ppl * sd_nll / sqrt(N) (delta method); 0 when N < 2
};

/// Running mean and spread of the NLLs (Welford, in double) as tokens are scored.
class NllAccumulator {
 public:
  void add(double nll);
  PerplexityStats stats() const;

 private:
  std::size_t n_ = 0;
  double mean_ = 0.0;
  double m2_ = 0.0;  ///< sum of squared deviations from the running mean
};

/// How far this run's next-token distributions are from the base run's, per scored token.
struct KlStats {
  std::size_t tokens = 0;
  double mean_kl = 0.0;            ///< mean KL(base || this), nats
  double max_kl = 0.0;             ///< the largest per-token KL
  double p99_kl = 0.0;             ///< 99th percentile of the per-token KL (nearest rank)
  double top1_agreement = 0.0;     ///< fraction of tokens whose argmax is the same in both runs
  double max_logprob_error = 0.0;  ///< max |log p_base - log p_this| over tokens and the vocabulary
  PerplexityStats base;            ///< the base run's perplexity on the same tokens
};

/// Collects per-token KL(base || this) = sum_v p_base(v) (log p_base(v) - log p_this(v)), in double.
class KlAccumulator {
 public:
  /// base, self: [vocab] log-probabilities of one token position.
  void add(std::span<const float> base, std::span<const float> self);
  /// The base's NLL of the token actually there (for KlStats::base).
  void add_base_nll(double nll) { base_nll_.add(nll); }
  KlStats stats() const;

 private:
  std::vector<double> kl_;
  std::size_t agree_ = 0;
  double max_err_ = 0.0;
  NllAccumulator base_nll_;
};

/// The base-run file (--save-logits / --kl-base): a header, then for each scored token in order
/// its full log-probability row, [scored, vocab] fp32 little-endian. Full rows, not top-k, so
/// that KL is exact (a top-k file gives only a bound, and the tail is where low-bit formats go
/// wrong); the size is bounded by kMaxBytes instead (fewer --max-windows for a large vocabulary).
struct LogitsFileHeader {
  static constexpr char kMagic[8] = {'L', 'L', 'M', 'L', 'O', 'G', 'P', '\0'};
  static constexpr std::uint32_t kVersion = 1;
  static constexpr std::uint64_t kMaxBytes = std::uint64_t{4} << 30;  ///< 4 GiB of rows
  std::uint32_t vocab = 0;
  std::uint32_t ctx = 0;
  std::uint32_t stride = 0;
  std::uint64_t tokens = 0;      ///< tokens the windows covered
  std::uint64_t scored = 0;      ///< rows that follow
  std::uint64_t token_hash = 0;  ///< FNV-1a 64 of the covered token ids (int32 little-endian)
};
/// Bytes of the header on disk: magic, version, vocab, ctx, stride, tokens, scored, hash.
inline constexpr std::size_t kLogitsHeaderBytes = 8 + 4 * 4 + 3 * 8;

/// FNV-1a 64 over the ids as int32 little-endian bytes.
std::uint64_t hash_tokens(std::span<const int> tokens);

/// Writes a base-run file. Throws llm::Error naming the path if it cannot be written or would
/// exceed kMaxBytes.
class LogitsWriter {
 public:
  LogitsWriter(const std::string& path, const LogitsFileHeader& header);
  void write_row(std::span<const float> logprobs);
  /// Flushes and checks that every promised row was written.
  void close();

 private:
  std::string path_;
  std::ofstream out_;
  std::uint64_t rows_left_ = 0;
};

/// Reads a base-run file and checks it against this run: the header's magic, version, vocab,
/// windows and token hash must match `expect`, and the file's size must be the header's exactly
/// (a truncated file is refused before any row is read). Errors name the path, field and values.
class LogitsReader {
 public:
  LogitsReader(const std::string& path, const LogitsFileHeader& expect);
  /// The next row, [vocab] log-probabilities.
  std::span<const float> next_row();

 private:
  std::string path_;
  std::ifstream in_;
  std::vector<float> row_;
  std::uint64_t rows_left_ = 0;
};

/// What evaluate() does besides perplexity.
struct EvalOptions {
  LogitsWriter* save = nullptr;  ///< write each scored token's log-probabilities here
  LogitsReader* base = nullptr;  ///< compare each scored token against this base run
  /// Replace each window's first token by this id (BOS, as llama.cpp does: a model trained with
  /// BOS at position 0 sees one there); -1 = keep the text's token. Position 0 is never scored.
  int window_start_token = -1;
  /// Called for each scored token: (position in `tokens`, NLL). For tests and progress.
  std::function<void(std::size_t position, double nll)> on_scored;
};

/// What evaluate() measured.
struct EvalResult {
  WindowPlan plan;
  PerplexityStats ppl;
  bool has_kl = false;
  KlStats kl;
  double seconds = 0.0;  ///< time in Engine::logits
};

/// Runs every window of `plan` through engine.logits and scores it. tokens must hold at least
/// plan.covered() ids in [0, vocab). Throws llm::Error if the engine's rows are not [ctx, vocab]
/// or a logit is not finite.
EvalResult evaluate(Engine& engine, std::span<const int> tokens, int vocab, const WindowPlan& plan,
                    const EvalOptions& options = {});

}  // namespace llm::stage05
