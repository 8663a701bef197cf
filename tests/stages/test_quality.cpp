// Stage 05's quality tools (stages/05_quantization/quality.h):
//   [quality-math]     NLL, PPL and its standard error against an independent computation in double
//   [quality-uniform]  a model whose logits are all equal has PPL == vocab size
//   [quality-windows]  every token from ctx - stride on is scored exactly once, by the right row
//   [quality-kl]       a run against its own base: KL 0, top-1 100%; stage 04 (fp16) vs 01 (fp32): small KL
//   [quality-files]    a base file of another model or text, or truncated, is refused by name
//   [quality-weights]  stage 05's weight formats on held-out text: PPL within a stated bound of fp32's
//   [quality-kv]       stage 05's K/V cache formats on held-out text: PPL within +1% of fp32's
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/model_weights.h"
#include "gpu_engine.h"
#include "kv_engine.h"
#include "quality.h"
#include "quant_engine.h"
#include "tests/helpers/random_model.h"

using namespace llm;
using namespace llm::stage05;

namespace {

/// An engine whose logits are a fixed function of the window's tokens: row i =
/// row_of(window[0..i], i). Records the windows it was given.
class FunctionEngine : public Engine {
 public:
  FunctionEngine(int vocab, std::function<void(const std::vector<int>&, std::size_t, float*)> row_of)
      : vocab_(vocab), row_of_(std::move(row_of)) {}
  std::vector<float> logits(const std::vector<int>& tokens) override {
    seen.push_back(tokens);
    std::vector<float> out(tokens.size() * static_cast<std::size_t>(vocab_));
    for (std::size_t i = 0; i < tokens.size(); ++i) row_of_(tokens, i, &out[i * static_cast<std::size_t>(vocab_)]);
    return out;
  }
  std::vector<RequestResult> run(const std::vector<Request>&, const TokenCallback&) override { return {}; }
  std::vector<std::vector<int>> seen;

 private:
  int vocab_;
  std::function<void(const std::vector<int>&, std::size_t, float*)> row_of_;
};

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("llm_test_quality_" + name)).string();
}

/// The first n tokens of a held-out text under the model's tokenizer.
std::vector<int> heldout_tokens(const Model& m, std::size_t n) {
  std::ifstream in(test::repo_path("datasets/eval/heldout_kjv.txt"));
  REQUIRE(in.good());
  std::stringstream s;
  s << in.rdbuf();
  auto ids = m.tokenizer->encode_prompt(s.str(), n);
  REQUIRE(ids.size() > n);
  ids.resize(n);
  return ids;
}

LogitsFileHeader header_for(std::span<const int> tokens, int vocab, const WindowPlan& plan) {
  LogitsFileHeader h;
  h.vocab = static_cast<std::uint32_t>(vocab);
  h.ctx = static_cast<std::uint32_t>(plan.ctx);
  h.stride = static_cast<std::uint32_t>(plan.stride);
  h.tokens = plan.covered();
  h.scored = plan.scored();
  h.token_hash = hash_tokens(tokens.first(plan.covered()));
  return h;
}

}  // namespace

TEST_CASE("NLL, perplexity and its standard error equal an independent computation", "[quality-math]") {
  // One row by hand: logits (1, 2, 3), target 2: p = e^3 / (e + e^2 + e^3), NLL = log(1 + e^-1 + e^-2).
  const float row[3] = {1.0f, 2.0f, 3.0f};
  CHECK(token_nll(row, 3, 2) == Approx(0.40760596444437977).epsilon(1e-14));
  CHECK(token_nll(row, 3, 0) == Approx(2.40760596444437977).epsilon(1e-14));
  float lp[3];
  log_softmax(row, 3, lp);
  CHECK(std::exp(double{lp[0]}) + std::exp(double{lp[1]}) + std::exp(double{lp[2]}) == Approx(1.0).epsilon(1e-6));

  // A whole run: vocab 5, logits a fixed function of the window, ctx 4, stride 3, 9 tokens.
  const int V = 5;
  const std::vector<int> tokens = {0, 3, 1, 4, 4, 2, 0, 1, 3};
  auto row_of = [](const std::vector<int>& w, std::size_t i, float* out) {
    for (int v = 0; v < 5; ++v)
      out[v] = 0.25f * static_cast<float>((w[i] * 3 + v * 7 + static_cast<int>(i)) % 11) - 1.0f;
  };
  FunctionEngine engine(V, row_of);
  const WindowPlan plan = plan_windows(tokens.size(), 4, 3, 0, "test");
  REQUIRE(plan.windows == 2);  // windows [0, 4) and [3, 7); [6, 10) does not fit
  const EvalResult got = evaluate(engine, tokens, V, plan);

  // The same from first principles: window w scores positions start+1 .. start+3 from the row before.
  std::vector<double> nll;
  for (std::size_t start : {0u, 3u}) {
    const std::vector<int> w(tokens.begin() + static_cast<long>(start), tokens.begin() + static_cast<long>(start) + 4);
    for (std::size_t i = 1; i < 4; ++i) {
      float r[5];
      row_of(w, i - 1, r);
      double z = 0.0;
      for (float x : r) z += std::exp(static_cast<double>(x));
      nll.push_back(-std::log(std::exp(static_cast<double>(r[w[i]])) / z));
    }
  }
  double mean = 0.0;
  for (double x : nll) mean += x;
  mean /= static_cast<double>(nll.size());
  double ss = 0.0;
  for (double x : nll) ss += (x - mean) * (x - mean);
  const double sd = std::sqrt(ss / static_cast<double>(nll.size() - 1));
  const double ppl = std::exp(mean), se = ppl * sd / std::sqrt(static_cast<double>(nll.size()));
  CHECK(got.ppl.tokens == 6);
  CHECK(got.ppl.mean_nll == Approx(mean).epsilon(1e-12));
  CHECK(got.ppl.sd_nll == Approx(sd).epsilon(1e-9));
  CHECK(got.ppl.ppl == Approx(ppl).epsilon(1e-12));
  CHECK(got.ppl.ppl_se == Approx(se).epsilon(1e-9));
  CHECK(se > 0.0);
}

TEST_CASE("a model whose logits are all equal has perplexity equal to its vocabulary size", "[quality-uniform]") {
  for (const int V : {2, 7, 32000}) {
    FunctionEngine engine(V, [V](const std::vector<int>&, std::size_t, float* out) { std::fill(out, out + V, 0.75f); });
    std::vector<int> tokens(40);
    for (std::size_t i = 0; i < tokens.size(); ++i)
      tokens[i] = static_cast<int>((i * 13) % static_cast<std::size_t>(V));
    const EvalResult r = evaluate(engine, tokens, V, plan_windows(tokens.size(), 10, 5, 0, "test"));
    INFO("vocab " << V);
    CHECK(r.ppl.tokens == 35);
    CHECK(std::fabs(r.ppl.ppl - V) <= 1e-10 * V);
    CHECK(r.ppl.ppl_se == 0.0);  // every NLL is the same: no spread
  }
}

TEST_CASE("sliding windows score every token after the first window's unscored part exactly once",
          "[quality-windows]") {
  const int V = 11;
  // Row i puts logit 5 on (window[i] + 1) % V and 0 elsewhere; the text counts up mod V, so a
  // token scored from the right row (the one before it) has NLL log(V - 1 + e^5) - 5, and from
  // any other row log(V - 1 + e^5).
  FunctionEngine engine(V, [](const std::vector<int>& w, std::size_t i, float* out) {
    std::fill(out, out + 11, 0.0f);
    out[(w[i] + 1) % 11] = 5.0f;
  });
  const double right = std::log(V - 1 + std::exp(5.0)) - 5.0;
  for (const std::size_t n : {16u, 17u, 100u, 101u}) {
    for (const int ctx : {2, 7, 16}) {
      for (int stride = 1; stride < ctx; stride += (ctx > 8 ? 5 : 1)) {
        std::vector<int> tokens(n);
        for (std::size_t i = 0; i < n; ++i) tokens[i] = static_cast<int>(i % V);
        if (n < static_cast<std::size_t>(ctx)) continue;
        const WindowPlan plan = plan_windows(n, ctx, stride, 0, "test");
        std::vector<int> count(n, 0);
        EvalOptions o;
        o.on_scored = [&](std::size_t pos, double nll) {
          ++count[pos];
          CHECK(nll == Approx(right).epsilon(1e-12));
        };
        engine.seen.clear();
        const EvalResult r = evaluate(engine, tokens, V, plan, o);
        INFO("n " << n << " ctx " << ctx << " stride " << stride);
        CHECK(engine.seen.size() == plan.windows);
        CHECK(plan.covered() <= n);
        CHECK(plan.covered() + static_cast<std::size_t>(stride) > n);  // no further window fits
        CHECK(r.ppl.tokens == plan.scored());
        for (std::size_t p = 0; p < n; ++p) {
          const bool scored = p >= static_cast<std::size_t>(ctx - stride) && p < plan.covered();
          if (count[p] != (scored ? 1 : 0)) FAIL_CHECK("position " << p << " scored " << count[p] << " times");
        }
      }
    }
  }
  // --max-windows, and the start token put at position 0 of each window (never scored).
  std::vector<int> tokens(50);
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int>(i % V);
  const WindowPlan plan = plan_windows(tokens.size(), 8, 4, 3, "test");
  CHECK(plan.windows == 3);
  CHECK(plan.covered() == 16);
  EvalOptions o;
  o.window_start_token = 10;
  engine.seen.clear();
  evaluate(engine, tokens, V, plan, o);
  REQUIRE(engine.seen.size() == 3);
  for (std::size_t w = 0; w < 3; ++w) {
    CHECK(engine.seen[w][0] == 10);
    CHECK(engine.seen[w][1] == tokens[w * 4 + 1]);
  }
  // Bad windows are bad input.
  CHECK_THROWS_WITH(plan_windows(5, 8, 4, 0, "--text t.txt"),
                    Catch::Contains("t.txt: 5 tokens, shorter than one window of --ctx 8"));
  CHECK_THROWS_WITH(plan_windows(50, 8, 8, 0, "t"), Catch::Contains("--stride 8"));
  CHECK_THROWS_WITH(plan_windows(50, 8, 0, 0, "t"), Catch::Contains("--stride 0"));
  CHECK_THROWS_WITH(plan_windows(50, 1, 1, 0, "t"), Catch::Contains("--ctx 1"));
}

TEST_CASE("KL of a run against its own base is 0; stage 04's fp16 against stage 01's fp32 is small", "[quality-kl]") {
  const Model m = load_model(test::repo_path("datasets/models/tiny-target.gguf"));
  const int V = m.config().vocab_size;
  const int ctx = std::min(64, m.config().context_length);
  const std::vector<int> tokens = heldout_tokens(m, 4 * static_cast<std::size_t>(ctx));
  const WindowPlan plan = plan_windows(tokens.size(), ctx, ctx / 2, 4, "kjv");
  const LogitsFileHeader header = header_for(tokens, V, plan);
  const std::string path = temp_path("self.bin");

  stage01::KvCacheEngine fp32(m.weights, m.tokenizer->stop_ids());
  EvalResult base_run;
  {
    LogitsWriter save(path, header);
    EvalOptions o;
    o.save = &save;
    base_run = evaluate(fp32, tokens, V, plan, o);
    save.close();
  }
  CHECK(std::filesystem::file_size(path) == kLogitsHeaderBytes + plan.scored() * static_cast<std::size_t>(V) * 4);
  {
    // Stage 01's logits are not bit-for-bit repeatable between calls (they move by ~1e-7
    // relative with the heap's layout: Eigen's alignment peeling), so its own base is close to,
    // not exactly, 0; the exact 0 is checked below with an engine that is repeatable.
    LogitsReader base(path, header);
    EvalOptions o;
    o.base = &base;
    const EvalResult self = evaluate(fp32, tokens, V, plan, o);
    REQUIRE(self.has_kl);
    CHECK(self.kl.tokens == plan.scored());
    CHECK(self.kl.mean_kl < 1e-9);
    CHECK(self.kl.max_kl < 1e-7);
    CHECK(self.kl.top1_agreement == 1.0);
    CHECK(self.kl.max_logprob_error < 1e-4);
    CHECK(self.ppl.ppl == Approx(base_run.ppl.ppl).epsilon(1e-6));
    CHECK(self.kl.base.ppl == Approx(self.ppl.ppl).epsilon(1e-5));  // from the fp32-rounded log-probs
  }
  {
    // A repeatable engine against its own base: exactly 0, and the base's PPL is its own.
    FunctionEngine same(V, [&](const std::vector<int>& w, std::size_t i, float* out) {
      for (int v = 0; v < V; ++v) out[v] = 0.01f * static_cast<float>((w[i] * 31 + v * 17 + static_cast<int>(i)) % 997);
    });
    const std::string own = temp_path("own.bin");
    EvalResult first;
    {
      LogitsWriter save(own, header);
      EvalOptions o;
      o.save = &save;
      first = evaluate(same, tokens, V, plan, o);
      save.close();
    }
    LogitsReader base(own, header);
    EvalOptions o;
    o.base = &base;
    const EvalResult again = evaluate(same, tokens, V, plan, o);
    CHECK(again.kl.tokens == plan.scored());
    CHECK(again.kl.mean_kl == 0.0);
    CHECK(again.kl.max_kl == 0.0);
    CHECK(again.kl.p99_kl == 0.0);
    CHECK(again.kl.top1_agreement == 1.0);
    CHECK(again.kl.max_logprob_error == 0.0);
    CHECK(again.ppl.ppl == first.ppl.ppl);
    CHECK(again.kl.base.ppl == Approx(first.ppl.ppl).epsilon(1e-6));
    std::filesystem::remove(own);
  }
  {
    stage04::GpuEngineConfig c;
    c.backend = "cpu";
    c.batching.scheduler.max_running = 1;
    stage04::GpuEngine fp16 = stage04::make_gpu_engine(m.weights, m.tokenizer->stop_ids(), c);
    LogitsReader base(path, header);
    EvalOptions o;
    o.base = &base;
    const EvalResult r = evaluate(*fp16.engine, tokens, V, plan, o);
    // Measured on tiny-target (the first 4 windows of 64 tokens of heldout_kjv.txt, stride 32;
    // 128 tokens): mean KL 7.1e-8, p99 3.1e-7, max 4.0e-7 nats, top-1 100%, PPL 30.2759 vs
    // 30.2767 (-0.003%). fp16 storage is a real, tiny change: its KL stands well above stage 01's
    // call-to-call noise (< 1e-9, above).
    INFO("stage 04 cpu vs stage 01: mean KL " << r.kl.mean_kl << ", max " << r.kl.max_kl << ", p99 " << r.kl.p99_kl
                                              << ", top-1 " << r.kl.top1_agreement << ", PPL " << r.ppl.ppl << " vs "
                                              << base_run.ppl.ppl);
    CHECK(r.kl.mean_kl > 1e-8);
    CHECK(r.kl.mean_kl < 1e-6);
    CHECK(r.kl.max_kl < 1e-5);
    CHECK(r.kl.p99_kl <= r.kl.max_kl);
    CHECK(r.kl.top1_agreement >= 0.99);
    CHECK(std::fabs(r.ppl.ppl - base_run.ppl.ppl) / base_run.ppl.ppl < 2e-4);
  }
  std::filesystem::remove(path);
}

TEST_CASE("a base file of another model or text, or a truncated one, is refused with its path", "[quality-files]") {
  std::vector<int> tokens(64);
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int>(i % 7);
  const WindowPlan plan = plan_windows(tokens.size(), 16, 8, 0, "t");
  const LogitsFileHeader h = header_for(tokens, 7, plan);
  const std::string path = temp_path("files.bin");
  {
    LogitsWriter w(path, h);
    const std::vector<float> row(7, std::log(1.0f / 7.0f));
    for (std::size_t i = 0; i < plan.scored(); ++i) w.write_row(row);
    w.close();
  }
  CHECK_NOTHROW(LogitsReader(path, h));
  LogitsFileHeader other = h;
  other.vocab = 8;
  CHECK_THROWS_WITH(LogitsReader(path, other), Catch::Contains(path) && Catch::Contains("vocab 7, this model's is 8"));
  other = h;
  tokens[20] = 3;
  other.token_hash = hash_tokens(std::span<const int>(tokens).first(plan.covered()));
  CHECK(other.token_hash != h.token_hash);
  CHECK_THROWS_WITH(LogitsReader(path, other), Catch::Contains("another text"));
  other = h;
  other.stride = 4;
  CHECK_THROWS_WITH(LogitsReader(path, other), Catch::Contains("stride 8"));
  // Truncated by one byte, then to half the header; and a file that is not one.
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size - 1);
  CHECK_THROWS_WITH(LogitsReader(path, h), Catch::Contains("truncated"));
  std::filesystem::resize_file(path, kLogitsHeaderBytes / 2);
  CHECK_THROWS_WITH(LogitsReader(path, h), Catch::Contains("shorter than the"));
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << std::string(kLogitsHeaderBytes + 28, 'x');
  }
  CHECK_THROWS_WITH(LogitsReader(path, h), Catch::Contains("not a --save-logits file"));
  CHECK_THROWS_WITH(LogitsReader("/no/such/base.bin", h), Catch::Contains("/no/such/base.bin"));
  // Too big to write: refused before anything is written.
  LogitsFileHeader huge = h;
  huge.vocab = 1u << 20;
  huge.scored = 1u << 20;
  CHECK_THROWS_WITH(LogitsWriter(path, huge), Catch::Contains("use fewer --max-windows"));
  std::filesystem::remove(path);
}

namespace {

/// Perplexity of `engine` over the default model's held-out windows: 4 windows of 128 tokens of
/// heldout_kjv.txt and 4 of heldout_austen.txt (stride 64: 512 tokens scored in all), text the
/// model was not trained on.
struct HeldOut {
  Model model = load_model(test::repo_path("datasets/models/tiny-target.gguf"));
  std::vector<std::vector<int>> texts;
  HeldOut() {
    for (const char* f : {"datasets/eval/heldout_kjv.txt", "datasets/eval/heldout_austen.txt"}) {
      std::ifstream in(test::repo_path(f));
      REQUIRE(in.good());
      std::stringstream s;
      s << in.rdbuf();
      texts.push_back(model.tokenizer->encode(s.str()));
    }
  }
  double ppl(Engine& e) const {
    double nll = 0;
    std::size_t n = 0;
    for (const auto& t : texts) {
      const WindowPlan plan = plan_windows(t.size(), 128, 64, 4, "held-out");
      const EvalResult r = evaluate(e, t, model.config().vocab_size, plan);
      nll += r.ppl.mean_nll * static_cast<double>(r.ppl.tokens);
      n += r.ppl.tokens;
    }
    REQUIRE(n == 2 * 4 * 64);
    return std::exp(nll / static_cast<double>(n));
  }
  double stage05_ppl(const std::string& weights, const std::string& matmul, const std::string& kv) const {
    QuantEngineConfig c;
    c.stage04.backend = "cpu";
    c.stage04.batching.scheduler.max_running = 1;
    c.weights = weights;
    c.matmul = matmul;
    c.kv_cache = kv;
    auto built = make_quant_engine(model.weights, nullptr, model.tokenizer->stop_ids(), c);
    return ppl(*built.engine);
  }
};

}  // namespace

TEST_CASE("quantized weights keep the held-out perplexity within their bound of fp32's", "[quality-weights]") {
  const HeldOut h;
  stage01::KvCacheEngine fp32(h.model.weights, h.model.tokenizer->stop_ids());
  const double base = h.ppl(fp32);
  // Bounds on the relative PPL change against stage 01 (fp32 weights, fp32 K/V). Measured on an
  // Intel Xeon (Sapphire Rapids class, AVX-512 VNNI), Release: fp32 PPL 47.18 over the 512
  // tokens; q8_0 fused +0.06%; fp8 (E4M3, a scale per row) +0.08%; q4_0 +1.71%; q4_1 +0.62%;
  // --matmul int8: q8_0 +0.06%, q4_1 +0.67% with version 03 (at 7ac88dc), +0.08% and +0.67% with
  // version 04 (since f6395e5). Bounds: 8-bit within 1% (the issue's), 4-bit within 3%.
  struct Bound {
    const char* weights;
    const char* matmul;
    double max_change;
  };
  for (const Bound& b : {Bound{"q8_0", "fused", 0.01}, Bound{"q8_0", "int8", 0.01}, Bound{"fp8", "fused", 0.01},
                         Bound{"q4_0", "fused", 0.03}, Bound{"q4_1", "fused", 0.03}, Bound{"q4_1", "int8", 0.03}}) {
    const double p = h.stage05_ppl(b.weights, b.matmul, "f32");
    const double change = (p - base) / base;
    WARN("--weights " << b.weights << " --matmul " << b.matmul << ": PPL " << p << " vs fp32 " << base << " ("
                      << 100 * change << "%)");
    CHECK(std::isfinite(p));
    CHECK(std::fabs(change) <= b.max_change);
  }
}

TEST_CASE("a quantized K/V cache keeps the held-out perplexity within +1% of fp32's", "[quality-kv]") {
  const HeldOut h;
  stage01::KvCacheEngine fp32(h.model.weights, h.model.tokenizer->stop_ids());
  const double base = h.ppl(fp32);
  // fp32 weights, so that only the K/V storage changes. Measured (as above): f16 +0.001%,
  // int8 -0.010%, fp8 E4M3 +0.028%. Bound: within 1% (the issue's).
  for (const char* kv : {"f16", "int8", "fp8"}) {
    const double p = h.stage05_ppl("f32", "fused", kv);
    const double change = (p - base) / base;
    WARN("--kv-cache " << kv << ": PPL " << p << " vs fp32 " << base << " (" << 100 * change << "%)");
    CHECK(std::isfinite(p));
    CHECK(std::fabs(change) <= 0.01);
  }
}
