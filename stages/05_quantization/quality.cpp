#include "quality.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "common/checked.h"
#include "common/error.h"
#include "common/timer.h"

namespace llm::stage05 {

WindowPlan plan_windows(std::size_t n_tokens, int ctx, int stride, std::size_t max_windows, const std::string& source) {
  if (ctx < 2) throw Error("--ctx " + std::to_string(ctx) + ": a window needs at least 2 tokens");
  if (stride < 1 || stride >= ctx) {
    throw Error("--stride " + std::to_string(stride) + ": must be between 1 and --ctx - 1 = " +
                std::to_string(ctx - 1) + " (position 0 of a window has nothing before it to be predicted from)");
  }
  const auto window = static_cast<std::size_t>(ctx);
  if (n_tokens < window) {
    throw Error(source + ": " + std::to_string(n_tokens) + " tokens, shorter than one window of --ctx " +
                std::to_string(ctx) + " tokens");
  }
  WindowPlan plan;
  plan.ctx = ctx;
  plan.stride = stride;
  plan.windows = (n_tokens - window) / static_cast<std::size_t>(stride) + 1;
  if (max_windows > 0) plan.windows = std::min(plan.windows, max_windows);
  return plan;
}

std::size_t tokens_needed(int ctx, int stride, std::size_t max_windows) {
  if (max_windows == 0) return SIZE_MAX;
  const std::size_t more = checked_mul(max_windows - 1, static_cast<std::size_t>(stride), "--max-windows * --stride");
  return checked_add(more, static_cast<std::size_t>(ctx), "tokens of --max-windows windows");
}

namespace {
/// log(sum exp(logits)), shifted by the maximum so that nothing overflows.
double log_sum_exp(const float* logits, int vocab) {
  double mx = logits[0];
  for (int v = 1; v < vocab; ++v) mx = std::max(mx, static_cast<double>(logits[v]));
  double sum = 0.0;
  for (int v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(logits[v]) - mx);
  return mx + std::log(sum);
}
}  // namespace

void log_softmax(const float* logits, int vocab, float* out) {
  const double lse = log_sum_exp(logits, vocab);
  for (int v = 0; v < vocab; ++v) out[v] = static_cast<float>(static_cast<double>(logits[v]) - lse);
}

double token_nll(const float* logits, int vocab, int target) {
  return log_sum_exp(logits, vocab) - static_cast<double>(logits[target]);
}

void NllAccumulator::add(double nll) {
  // Welford's update: sum x^2 - n mean^2 would cancel catastrophically (NLLs near 10 nats,
  // spreads near 0), turning equal NLLs into a spurious error bar.
  ++n_;
  const double delta = nll - mean_;
  mean_ += delta / static_cast<double>(n_);
  m2_ += delta * (nll - mean_);
}

PerplexityStats NllAccumulator::stats() const {
  PerplexityStats s;
  s.tokens = n_;
  if (n_ == 0) return s;
  const double n = static_cast<double>(n_);
  s.mean_nll = mean_;
  s.ppl = std::exp(mean_);
  if (n_ >= 2) {
    s.sd_nll = std::sqrt(m2_ / (n - 1.0));
    s.ppl_se = s.ppl * s.sd_nll / std::sqrt(n);
  }
  return s;
}

void KlAccumulator::add(std::span<const float> base, std::span<const float> self) {
  double kl = 0.0;
  std::size_t arg_base = 0, arg_self = 0;
  for (std::size_t v = 0; v < base.size(); ++v) {
    const double lb = base[v], ls = self[v];
    // p log(p/q) -> 0 as p -> 0: a token the base gives no mass adds nothing.
    if (lb > -INFINITY) kl += std::exp(lb) * (lb - ls);
    if (base[v] > base[arg_base]) arg_base = v;
    if (self[v] > self[arg_self]) arg_self = v;
    max_err_ = std::max(max_err_, std::fabs(lb - ls));
  }
  // Rounding of the two log-softmaxes can leave a tiny negative sum for equal distributions.
  kl_.push_back(std::max(0.0, kl));
  if (arg_base == arg_self) ++agree_;
}

KlStats KlAccumulator::stats() const {
  KlStats s;
  s.tokens = kl_.size();
  s.base = base_nll_.stats();
  s.max_logprob_error = max_err_;
  if (kl_.empty()) return s;
  double sum = 0.0;
  for (const double k : kl_) sum += k;
  s.mean_kl = sum / static_cast<double>(kl_.size());
  std::vector<double> sorted = kl_;
  std::sort(sorted.begin(), sorted.end());
  s.max_kl = sorted.back();
  // Nearest rank: the smallest value with at least 99% of the tokens at or below it.
  const auto rank = static_cast<std::size_t>(std::ceil(0.99 * static_cast<double>(sorted.size())));
  s.p99_kl = sorted[std::max<std::size_t>(rank, 1) - 1];
  s.top1_agreement = static_cast<double>(agree_) / static_cast<double>(kl_.size());
  return s;
}

std::uint64_t hash_tokens(std::span<const int> tokens) {
  std::uint64_t h = 14695981039346656037ull;
  for (const int t : tokens) {
    const auto u = static_cast<std::uint32_t>(t);
    for (int b = 0; b < 4; ++b) {
      h ^= (u >> (8 * b)) & 0xFFu;
      h *= 1099511628211ull;
    }
  }
  return h;
}

// ---- the base-run file (little-endian fields, written one by one so padding cannot creep in)

namespace {
template <typename T>
void put(std::ofstream& out, T v) {
  unsigned char b[sizeof(T)];
  for (std::size_t i = 0; i < sizeof(T); ++i)
    b[i] = static_cast<unsigned char>((static_cast<std::uint64_t>(v) >> (8 * i)) & 0xFF);
  out.write(reinterpret_cast<const char*>(b), sizeof b);
}
template <typename T>
T get(const unsigned char*& p) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  p += sizeof(T);
  return static_cast<T>(v);
}

std::uint64_t row_bytes_total(const LogitsFileHeader& h, const std::string& what) {
  const std::uint64_t row = checked_mul<std::uint64_t>(h.vocab, sizeof(float), what + ": vocab * 4 bytes");
  return checked_mul<std::uint64_t>(h.scored, row, what + ": scored tokens * row bytes");
}
}  // namespace

LogitsWriter::LogitsWriter(const std::string& path, const LogitsFileHeader& header) : path_(path) {
  const std::uint64_t bytes = row_bytes_total(header, "--save-logits " + path);
  if (bytes > LogitsFileHeader::kMaxBytes) {
    throw Error("--save-logits " + path + ": " + std::to_string(header.scored) + " tokens x vocab " +
                std::to_string(header.vocab) + " x 4 bytes = " + std::to_string(bytes) + " bytes, over the limit of " +
                std::to_string(LogitsFileHeader::kMaxBytes) + ": use fewer --max-windows");
  }
  out_.open(path, std::ios::binary | std::ios::trunc);
  if (!out_) throw Error("--save-logits " + path + ": cannot open for writing");
  out_.write(LogitsFileHeader::kMagic, sizeof LogitsFileHeader::kMagic);
  put(out_, LogitsFileHeader::kVersion);
  put(out_, header.vocab);
  put(out_, header.ctx);
  put(out_, header.stride);
  put(out_, header.tokens);
  put(out_, header.scored);
  put(out_, header.token_hash);
  rows_left_ = header.scored;
}

void LogitsWriter::write_row(std::span<const float> logprobs) {
  if (rows_left_ == 0) throw std::logic_error("LogitsWriter: more rows than the header promised");
  --rows_left_;
  // The project runs on little-endian hosts only (x86-64, aarch64): floats go out as they are.
  out_.write(reinterpret_cast<const char*>(logprobs.data()), static_cast<std::streamsize>(logprobs.size_bytes()));
}

void LogitsWriter::close() {
  out_.flush();
  if (!out_) throw Error("--save-logits " + path_ + ": write failed (disk full?)");
  if (rows_left_ != 0) throw std::logic_error("LogitsWriter: fewer rows than the header promised");
  out_.close();
}

LogitsReader::LogitsReader(const std::string& path, const LogitsFileHeader& expect) : path_(path) {
  const std::string who = "--kl-base " + path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error(who + ": is a directory, not a file");
  in_.open(path, std::ios::binary);
  if (!in_) throw Error(who + ": cannot open");
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw Error(who + ": cannot read its size");
  unsigned char raw[kLogitsHeaderBytes];
  if (size < kLogitsHeaderBytes || !in_.read(reinterpret_cast<char*>(raw), sizeof raw)) {
    throw Error(who + ": " + std::to_string(size) + " bytes, shorter than the " + std::to_string(kLogitsHeaderBytes) +
                "-byte header (truncated, or not a --save-logits file)");
  }
  if (std::memcmp(raw, LogitsFileHeader::kMagic, sizeof LogitsFileHeader::kMagic) != 0)
    throw Error(who + ": magic \"" + printable(std::string(reinterpret_cast<char*>(raw), 7)) +
                "\", not LLMLOGP: not a --save-logits file");
  const unsigned char* p = raw + sizeof LogitsFileHeader::kMagic;
  const auto version = get<std::uint32_t>(p);
  if (version != LogitsFileHeader::kVersion) {
    throw Error(who + ": version " + std::to_string(version) + ", this build reads version " +
                std::to_string(LogitsFileHeader::kVersion));
  }
  LogitsFileHeader h;
  h.vocab = get<std::uint32_t>(p);
  h.ctx = get<std::uint32_t>(p);
  h.stride = get<std::uint32_t>(p);
  h.tokens = get<std::uint64_t>(p);
  h.scored = get<std::uint64_t>(p);
  h.token_hash = get<std::uint64_t>(p);
  if (h.vocab != expect.vocab) {
    throw Error(who + ": vocab " + std::to_string(h.vocab) + ", this model's is " + std::to_string(expect.vocab) +
                " (a base run of another model)");
  }
  if (h.ctx != expect.ctx || h.stride != expect.stride) {
    throw Error(who + ": windows ctx " + std::to_string(h.ctx) + " stride " + std::to_string(h.stride) +
                ", this run's are ctx " + std::to_string(expect.ctx) + " stride " + std::to_string(expect.stride) +
                " (give the base run's --ctx and --stride)");
  }
  if (h.tokens != expect.tokens || h.scored != expect.scored || h.token_hash != expect.token_hash) {
    throw Error(who + ": " + std::to_string(h.tokens) + " tokens (hash " + std::to_string(h.token_hash) +
                "), this run has " + std::to_string(expect.tokens) + " (hash " + std::to_string(expect.token_hash) +
                "): a base run of another text, tokenizer or --max-windows");
  }
  const std::uint64_t want =
      checked_add<std::uint64_t>(row_bytes_total(h, who), kLogitsHeaderBytes, who + ": file size");
  if (size != want) {
    throw Error(who + ": " + std::to_string(size) + " bytes, the header promises " + std::to_string(want) + " (" +
                std::to_string(h.scored) + " rows of vocab " + std::to_string(h.vocab) +
                " fp32): " + (size < want ? "truncated" : "trailing bytes"));
  }
  row_.resize(h.vocab);
  rows_left_ = h.scored;
}

std::span<const float> LogitsReader::next_row() {
  if (rows_left_ == 0) throw std::logic_error("LogitsReader: read past the last row");
  --rows_left_;
  if (!in_.read(reinterpret_cast<char*>(row_.data()), static_cast<std::streamsize>(row_.size() * sizeof(float))))
    throw Error("--kl-base " + path_ + ": read failed");
  for (const float v : row_) {
    // A log-probability is finite or -inf (a token given no mass); anything else is a damaged file.
    if (std::isnan(v) || v > 0.0f)
      throw Error("--kl-base " + path_ + ": a log-probability is " + std::to_string(v) + " (damaged file)");
  }
  return row_;
}

// ---- the evaluation loop

EvalResult evaluate(Engine& engine, std::span<const int> tokens, int vocab, const WindowPlan& plan,
                    const EvalOptions& options) {
  if (tokens.size() < plan.covered()) throw std::logic_error("evaluate: fewer tokens than the plan covers");
  const auto ctx = static_cast<std::size_t>(plan.ctx), stride = static_cast<std::size_t>(plan.stride);
  const auto V = static_cast<std::size_t>(vocab);
  EvalResult r;
  r.plan = plan;
  r.has_kl = options.base != nullptr;
  NllAccumulator nll;
  KlAccumulator kl;
  std::vector<float> logprobs(V);
  Timer timer;
  for (std::size_t w = 0; w < plan.windows; ++w) {
    const std::size_t start = w * stride;
    std::vector<int> window(tokens.begin() + static_cast<std::ptrdiff_t>(start),
                            tokens.begin() + static_cast<std::ptrdiff_t>(start + ctx));
    if (options.window_start_token >= 0) window[0] = options.window_start_token;
    const double t0 = timer.seconds();
    const std::vector<float> logits = engine.logits(window);
    r.seconds += timer.seconds() - t0;
    if (logits.size() != ctx * V) {
      throw std::logic_error("evaluate: the engine returned " + std::to_string(logits.size()) + " logits for " +
                             std::to_string(ctx) + " tokens x vocab " + std::to_string(vocab));
    }
    // Row i predicts token i + 1: the scored tokens ctx - stride .. ctx - 1 use rows before them.
    for (std::size_t i = ctx - stride; i < ctx; ++i) {
      const float* row = &logits[(i - 1) * V];
      for (std::size_t v = 0; v < V; ++v) {
        if (!std::isfinite(row[v])) {
          throw Error("logits at text position " + std::to_string(start + i - 1) + ", token " + std::to_string(v) +
                      ": not finite (" + std::to_string(row[v]) + ")");
        }
      }
      const int target = window[i];
      const double token = token_nll(row, vocab, target);
      nll.add(token);
      if (options.on_scored) options.on_scored(start + i, token);
      if (options.save != nullptr || options.base != nullptr) log_softmax(row, vocab, logprobs.data());
      if (options.save != nullptr) options.save->write_row(logprobs);
      if (options.base != nullptr) {
        const std::span<const float> base = options.base->next_row();
        kl.add(base, logprobs);
        kl.add_base_nll(-static_cast<double>(base[static_cast<std::size_t>(target)]));
      }
    }
  }
  r.ppl = nll.stats();
  if (r.has_kl) r.kl = kl.stats();
  return r;
}

}  // namespace llm::stage05
