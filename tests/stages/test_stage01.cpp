// Stage 01 (KV cache) against stage 00 (recompute everything):
//   [vs-stage00]  teacher-forced logits at every position, prefilled and decoded in every split,
//                 within 1e-4 of stage 00, on the default models and random awkward shapes
//   [generate]    greedy generation gives stage 00's tokens, and the logits they came from
//   [errors]      a full cache and an over-long request are clear errors
//   [ex:NAME]     each exercise against its reference
#include <catch2/catch.hpp>
#include <random>

#include "common/error.h"
#include "common/model_weights.h"
#include "kernels/cpu/ops.h"
#include "stages/00_naive/naive_engine.h"
#include "stages/01_kv_cache/cached_attention.h"
#include "stages/01_kv_cache/kv_engine.h"
#include "tests/helpers/checks.h"
#include "tests/helpers/random_model.h"
#include "tests/helpers/reference_forward.h"

using namespace llm;
using test::check_rows;
using test::randn;

namespace {
constexpr double kTol = 1e-4;  // docs/ARCHITECTURE.md, Correctness: fp32 stages doing the same arithmetic agree within 1e-4

// Logits [n, vocab] of `tokens` computed through the cache: the first `prefill` tokens in one
// pass, then one token per decode step, as generation does.
std::vector<float> cached_logits(const ModelWeights& w, const std::vector<int>& tokens, std::size_t prefill) {
  stage01::KvCache cache(w.config, static_cast<int>(tokens.size()));
  ForwardScratch scratch;
  std::vector<float> all =
      stage01::extend(w, cache, std::span<const int>(tokens.data(), prefill), /*all_rows=*/true, scratch);
  for (std::size_t t = prefill; t < tokens.size(); ++t) {
    const auto row = stage01::extend(w, cache, std::span<const int>(&tokens[t], 1), false, scratch);
    all.insert(all.end(), row.begin(), row.end());
  }
  CHECK(cache.length() == static_cast<int>(tokens.size()));
  return all;
}

void check_against_stage00(const ModelWeights& w, const std::vector<int>& tokens) {
  const auto want = stage00::forward(w, tokens, /*all_positions=*/true);
  const auto cols = static_cast<std::size_t>(w.config.vocab_size);
  for (std::size_t prefill : {std::size_t{1}, tokens.size() / 2, tokens.size()}) {
    INFO("prefill " << prefill << " of " << tokens.size() << " tokens, then decode");
    check_rows(cached_logits(w, tokens, prefill), want, cols, kTol);
  }
}

std::vector<int> random_tokens(int n, int vocab, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int> t;
  for (int i = 0; i < n; ++i) t.push_back(static_cast<int>(rng() % static_cast<std::uint64_t>(vocab)));
  return t;
}
}  // namespace

TEST_CASE("stage 01 gives stage 00's logits at every position", "[vs-stage00]") {
  for (const char* path : {"datasets/models/tiny-target.gguf", "datasets/models/tiny-draft.gguf"}) {
    Model m = load_model(test::repo_path(path));
    INFO(path);
    std::vector<int> tokens = m.tokenizer->encode_prompt(
        "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in "
        "want of a wife. And God said, Let there be light: and there was light.");
    REQUIRE(tokens.size() > 30);
    check_against_stage00(m.weights, tokens);
    // The whole context, to the last position.
    check_against_stage00(m.weights, random_tokens(m.config().context_length, m.config().vocab_size, 5));
  }
  for (const auto& spec : test::awkward_specs()) {
    INFO("shape " << spec.name);
    const ModelWeights w = test::make_random_weights(spec);
    check_against_stage00(w, random_tokens(spec.context, spec.vocab, spec.seed));
  }
}

TEST_CASE("stage 01 generates stage 00's tokens from the same logits", "[generate]") {
  Model m = load_model(test::repo_path("datasets/models/tiny-target.gguf"));
  const auto vocab = static_cast<std::size_t>(m.config().vocab_size);
  std::vector<Request> reqs(3);
  const char* prompts[] = {"The Lord said unto Moses", "Mr. Darcy", "And"};
  const int lengths[] = {40, 25, 1};
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    reqs[i].id = std::string(1, static_cast<char>('a' + i));
    reqs[i].prompt = m.tokenizer->encode_prompt(prompts[i]);
    reqs[i].max_new_tokens = lengths[i];
  }
  stage00::NaiveEngine naive(m.weights, {});
  stage01::KvCacheEngine cached(m.weights, {});
  cached.set_keep_logits(true);
  const auto want = naive.run(reqs, nullptr);
  std::vector<int> streamed;
  const auto got = cached.run(reqs, [&](std::size_t, int t) { streamed.push_back(t); });
  REQUIRE(got.size() == reqs.size());
  std::vector<int> all;
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    INFO("request " << i);
    CHECK(got[i].tokens == want[i].tokens);
    CHECK(got[i].tokens.size() == static_cast<std::size_t>(lengths[i]));
    REQUIRE(got[i].logits.size() == got[i].tokens.size() * vocab);
    // The logits each token was sampled from are stage 00's logits at those positions.
    std::vector<int> seq = reqs[i].prompt;
    seq.insert(seq.end(), got[i].tokens.begin(), got[i].tokens.end() - 1);
    const auto ref = stage00::forward(m.weights, seq, true);
    check_rows(got[i].logits, std::vector<float>(ref.end() - static_cast<long>(got[i].logits.size()), ref.end()), vocab,
               kTol);
    all.insert(all.end(), got[i].tokens.begin(), got[i].tokens.end());
  }
  CHECK(streamed == all);
  // The counters: one decode step per token after the first, and the cache held the longest request.
  const EngineStats s = cached.stats();
  CHECK(s.decode_steps == 40 - 1 + 25 - 1 + 1 - 1);
  CHECK(s.kv_bytes_used == (reqs[0].prompt.size() + 39) * stage01::KvCache::bytes_per_token(m.config()));
  CHECK(s.kv_bytes_allocated >= s.kv_bytes_used);
  CHECK(s.decode_bytes > static_cast<double>(s.decode_steps) * static_cast<double>(m.weights.bytes()) * 0.9);

  // Sampling with a seed repeats and stop tokens end a request, as in stage 00.
  reqs.resize(1);
  reqs[0].sampling = {0.8f, 40, 0.95f, 1234};
  CHECK(cached.run(reqs, nullptr)[0].tokens == naive.run(reqs, nullptr)[0].tokens);
  stage01::KvCacheEngine stopping(m.weights, {want[0].tokens[3]});
  reqs[0].sampling = {};
  const auto s2 = stopping.run(reqs, nullptr);
  CHECK(s2[0].stopped);
  CHECK(s2[0].tokens.size() == 4);
}

TEST_CASE("stage 01 refuses what does not fit", "[errors]") {
  const ModelWeights w = test::make_random_weights(test::awkward_specs()[0]);
  stage01::KvCache cache(w.config, 4);
  ForwardScratch scratch;
  const std::vector<int> five = {1, 2, 3, 4, 5};
  CHECK_THROWS_WITH(stage01::extend(w, cache, five, false, scratch), Catch::Contains("exceed its 4 slots"));
  stage01::KvCacheEngine engine(w, {});
  Request r;
  r.id = "long";
  r.prompt = random_tokens(w.config.context_length, w.config.vocab_size, 1);
  r.max_new_tokens = 2;
  CHECK_THROWS_WITH(engine.run({r}, nullptr), Catch::Contains("context"));
  CHECK_THROWS_AS(stage01::KvCache(w.config, 0), Error);
}

TEST_CASE("exercise kv-cache-append: rows land after the cached ones, in their layer", "[ex:kv-cache-append]") {
  const ModelWeights w = test::make_random_weights(test::awkward_specs()[1]);
  const ModelConfig& c = w.config;
  const auto kvd = static_cast<std::size_t>(c.kv_dim());
  stage01::KvCache cache(c, 6);
  const auto k1 = randn(2 * kvd, 1), v1 = randn(2 * kvd, 2), k2 = randn(3 * kvd, 3), v2 = randn(3 * kvd, 4);
  cache.append(1, k1.data(), v1.data(), 2);
  cache.finish_step(2);
  cache.append(1, k2.data(), v2.data(), 3);
  cache.finish_step(3);
  CHECK(cache.length() == 5);
  auto rows = [&](const float* p, std::size_t from, std::size_t n) {
    return std::vector<float>(p + from * kvd, p + (from + n) * kvd);
  };
  CHECK(rows(cache.keys(1), 0, 2) == k1);
  CHECK(rows(cache.values(1), 0, 2) == v1);
  CHECK(rows(cache.keys(1), 2, 3) == k2);
  CHECK(rows(cache.values(1), 2, 3) == v2);
  CHECK(rows(cache.keys(0), 0, 5) == std::vector<float>(5 * kvd, 0.0f));  // other layers untouched
  CHECK(cache.bytes_used() == 5 * stage01::KvCache::bytes_per_token(c));
}

TEST_CASE("exercise cached-attention: new queries over the cache equal full causal attention", "[ex:cached-attention]") {
  for (auto [start, n, heads, kv, hd] :
       {std::tuple{0, 7, 4, 4, 8}, {9, 1, 6, 2, 6}, {30, 1, 9, 3, 64}, {5, 4, 7, 1, 6}, {0, 1, 1, 1, 10}}) {
    const int total = start + n;
    const auto q = randn(static_cast<std::size_t>(total * heads * hd), 13),
               k = randn(static_cast<std::size_t>(total * kv * hd), 14),
               v = randn(static_cast<std::size_t>(total * kv * hd), 15);
    std::vector<float> full(q.size());
    cpu::causal_attention(full.data(), q.data(), k.data(), v.data(), total, heads, kv, hd);
    const auto row = static_cast<std::size_t>(heads * hd);
    std::vector<float> got(static_cast<std::size_t>(n) * row);
    harness::poison(got);
    stage01::cached_attention(got.data(), q.data() + static_cast<std::size_t>(start) * row, k.data(), v.data(), n,
                              start, heads, kv, hd);
    INFO("start=" << start << " n=" << n << " heads=" << heads << " kv=" << kv << " hd=" << hd);
    check_rows(got, std::vector<float>(full.begin() + static_cast<long>(start * row), full.end()), row, 1e-5);
  }
}

TEST_CASE("exercise prefill-decode: new tokens continue the cached positions", "[ex:prefill-decode]") {
  const ModelWeights w = test::make_random_weights(test::awkward_specs()[2]);
  const auto tokens = random_tokens(20, w.config.vocab_size, 9);
  const auto vocab = static_cast<std::size_t>(w.config.vocab_size);
  const auto want = test::reference_logits(w, tokens);  // kernels/cpu forward over all 20 at once
  auto rows = [&](std::size_t from, std::size_t n) {
    return std::vector<float>(want.begin() + static_cast<long>(from * vocab),
                              want.begin() + static_cast<long>((from + n) * vocab));
  };
  stage01::KvCache cache(w.config, 20);
  ForwardScratch scratch;
  const std::span<const int> all(tokens);
  check_rows(stage01::extend(w, cache, all.subspan(0, 8), true, scratch), rows(0, 8), vocab, kTol);  // prefill
  CHECK(cache.length() == 8);
  check_rows(stage01::extend(w, cache, all.subspan(8, 1), false, scratch), rows(8, 1), vocab, kTol);  // decode
  CHECK(cache.length() == 9);
  // A chunk after decoding (chunked prefill): only its last row unless all rows are asked for.
  check_rows(stage01::extend(w, cache, all.subspan(9, 5), false, scratch), rows(13, 1), vocab, kTol);
  check_rows(stage01::extend(w, cache, all.subspan(14, 6), true, scratch), rows(14, 6), vocab, kTol);
  CHECK(cache.length() == 20);
}
