// Stage 02 (static batching) against stage 01 (one request at a time):
//   [vs-stage01]  every request's tokens and logits equal its solo run: mixed prompt lengths,
//                 mixed max_new_tokens, early stop tokens, batches smaller and larger than the
//                 workload, on the default model and random awkward shapes
//   [stats]       wasted slot-steps and KV bytes are what the batch shapes imply
//   [errors]      impossible requests and batch sizes are clear errors
//   [ex:NAME]     each exercise against its reference
#include <catch2/catch.hpp>
#include <random>

#include "common/error.h"
#include "common/model_weights.h"
#include "stages/01_kv_cache/cached_attention.h"
#include "stages/01_kv_cache/kv_engine.h"
#include "stages/02_static_batching/batch_kv_cache.h"
#include "stages/02_static_batching/padded_batch.h"
#include "stages/02_static_batching/static_batch_engine.h"
#include "tests/helpers/checks.h"
#include "tests/helpers/random_model.h"
#include "tests/helpers/random_requests.h"

using namespace llm;
using test::check_rows;
using test::randn;

namespace {
constexpr double kTol = 1e-4;

// Runs the requests alone through stage 01 and batched through stage 02 and compares each one.
void check_batched_equals_solo(const ModelWeights& w, const std::vector<Request>& reqs, std::vector<int> stops) {
  const auto vocab = static_cast<std::size_t>(w.config.vocab_size);
  stage01::KvCacheEngine solo(w, stops);
  solo.set_keep_logits(true);
  const auto want = solo.run(reqs, nullptr);
  for (int batch : {1, 3, 16}) {
    stage02::StaticBatchEngine batched(w, stops, batch);
    batched.set_keep_logits(true);
    std::vector<std::pair<std::size_t, int>> streamed;
    const auto got = batched.run(reqs, [&](std::size_t r, int t) { streamed.emplace_back(r, t); });
    REQUIRE(got.size() == reqs.size());
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      INFO("batch " << batch << ", request " << i << " (prompt " << reqs[i].prompt.size() << ", max_new "
                    << reqs[i].max_new_tokens << ")");
      CHECK(got[i].id == reqs[i].id);
      CHECK(got[i].tokens == want[i].tokens);
      CHECK(got[i].stopped == want[i].stopped);
      if (got[i].tokens == want[i].tokens) check_rows(got[i].logits, want[i].logits, vocab, kTol);
      std::vector<int> mine;
      for (const auto& [r, t] : streamed)
        if (r == i) mine.push_back(t);
      CHECK(mine == got[i].tokens);
    }
  }
}
}  // namespace

TEST_CASE("stage 02 gives every request its solo stage-01 result", "[vs-stage01]") {
  {
    Model m = load_model(test::repo_path("datasets/models/tiny-target.gguf"));
    std::vector<Request> reqs;
    const char* prompts[] = {"And God said", "It is a truth universally acknowledged, that a single man", "Mr.",
                             "The LORD is my shepherd; I shall not want. He maketh me to lie down", "Emma"};
    const int max_new[] = {30, 5, 17, 1, 24};
    for (std::size_t i = 0; i < 5; ++i) {
      Request r;
      r.id = std::string(1, static_cast<char>('a' + i));
      r.prompt = m.tokenizer->encode_prompt(prompts[i]);
      r.max_new_tokens = max_new[i];
      reqs.push_back(r);
    }
    // A stop token that request "a" produces early, so that its row retires mid-batch.
    stage01::KvCacheEngine probe(m.weights, {});
    const auto first = probe.run({reqs[0]}, nullptr);
    INFO("default model");
    check_batched_equals_solo(m.weights, reqs, {first[0].tokens[6]});
    check_batched_equals_solo(m.weights, reqs, m.tokenizer->stop_ids());
  }
  for (const auto& spec : test::awkward_specs()) {
    INFO("shape " << spec.name);
    const ModelWeights w = test::make_random_weights(spec);
    check_batched_equals_solo(w, test::random_requests(spec.vocab, spec.context, spec.seed, 7), {2});
  }
}

TEST_CASE("stage 02 counts wasted slot-steps and KV bytes", "[stats]") {
  const ModelWeights w = test::make_random_weights(test::awkward_specs()[1]);
  const ModelConfig& c = w.config;
  std::vector<Request> reqs(3);
  const int prompt_len[] = {3, 8, 5}, max_new[] = {2, 5, 9};
  for (std::size_t i = 0; i < 3; ++i) {
    reqs[i].id = std::string(1, static_cast<char>('a' + i));
    reqs[i].prompt.assign(static_cast<std::size_t>(prompt_len[i]), 7);
    reqs[i].max_new_tokens = max_new[i];
  }
  stage02::StaticBatchEngine engine(w, {}, 3);
  engine.run(reqs, nullptr);
  const EngineStats s = engine.stats();
  // The longest request needs 9 tokens: the first from prefill, then 8 decode steps of 3 rows.
  CHECK(s.decode_steps == 8);
  CHECK(s.slot_steps == 24);
  // A row that wants m tokens sits finished for the last 9 - m steps.
  CHECK(s.wasted_slot_steps == (9 - 2) + (9 - 5) + (9 - 9));
  CHECK(s.padded_tokens == (8 - 3) + (8 - 5));
  const std::size_t bpt = stage01::KvCache::bytes_per_token(c);
  CHECK(s.kv_bytes_allocated == 3 * (8 + 9 - 1) * bpt);  // every row: longest prompt + longest generation
  CHECK(s.kv_bytes_used == ((3 + 1) + (8 + 4) + (5 + 8)) * bpt);
}

TEST_CASE("stage 02 refuses what cannot run", "[errors]") {
  const ModelWeights w = test::make_random_weights(test::awkward_specs()[0]);
  CHECK_THROWS_AS(stage02::StaticBatchEngine(w, {}, 0), Error);
  stage02::StaticBatchEngine engine(w, {}, 4);
  Request r;
  r.id = "long";
  r.prompt.assign(static_cast<std::size_t>(w.config.context_length - 1), 3);
  r.max_new_tokens = 5;
  const auto out = engine.run({r}, nullptr);  // refused with the reason; the others would run
  CHECK_THAT(out.at(0).rejected, Catch::Contains("context"));
  CHECK(out[0].tokens.empty());
  CHECK(engine.stats().rejected == 1);
}

TEST_CASE("exercise pad-positions: prompts are right-aligned and keep their own positions", "[ex:pad-positions]") {
  const auto b = stage02::pad_left({{5, 6, 7}, {8}, {1, 2, 3, 4, 9}}, -1);
  CHECK(b.rows == 3);
  CHECK(b.columns == 5);
  CHECK(b.pad == std::vector<int>{2, 4, 0});
  CHECK(b.tokens == std::vector<int>{-1, -1, 5, 6, 7, /**/ -1, -1, -1, -1, 8, /**/ 1, 2, 3, 4, 9});
  CHECK(b.positions == std::vector<int>{0, 0, 0, 1, 2, /**/ 0, 0, 0, 0, 0, /**/ 0, 1, 2, 3, 4});
  CHECK_THROWS_AS(stage02::pad_left({{1}, {}}, 0), Error);
}

TEST_CASE("exercise padding-mask: a padded row attends exactly like the unpadded sequence", "[ex:padding-mask]") {
  test::RandomModelSpec spec = test::awkward_specs()[2];  // 9 heads, 3 kv heads, head_dim 6
  const ModelWeights w = test::make_random_weights(spec);
  const ModelConfig& c = w.config;
  const auto qd = static_cast<std::size_t>(c.q_dim()), kvd = static_cast<std::size_t>(c.kv_dim());
  for (auto [pad, first, n] : {std::tuple{3, 0, 7}, {3, 7, 1}, {0, 4, 2}, {5, 2, 2}, {2, 2, 3}}) {
    INFO("pad " << pad << ", new columns " << first << " .. " << first + n - 1);
    const int columns = first + n;
    // Pad columns of the cache hold huge values: any weight on them would show.
    auto k = randn(static_cast<std::size_t>(columns) * kvd, 1), v = randn(static_cast<std::size_t>(columns) * kvd, 2);
    for (std::size_t i = 0; i < static_cast<std::size_t>(pad) * kvd && i < k.size(); ++i) k[i] = v[i] = 1e4f;
    const auto q = randn(static_cast<std::size_t>(n) * qd, 3);
    std::vector<float> got(q.size());
    harness::poison(got);
    stage02::padded_row_attention(got.data(), q.data(), k.data(), v.data(), n, first, pad, c);
    // Reference: each real query against only the real columns, as an ordinary sequence.
    std::vector<float> want(q.size(), 0.0f);
    for (int i = 0; i < n; ++i) {
      const int col = first + i;
      if (col < pad) continue;
      stage01::cached_attention(&want[static_cast<std::size_t>(i) * qd], &q[static_cast<std::size_t>(i) * qd],
                                &k[static_cast<std::size_t>(pad) * kvd], &v[static_cast<std::size_t>(pad) * kvd], 1,
                                col - pad, c.n_heads, c.n_kv_heads, c.head_dim);
    }
    check_rows(got, want, qd, 1e-5);
  }
}

TEST_CASE("exercise retire-rows: rows end on a stop token or their own max_new_tokens", "[ex:retire-rows]") {
  std::vector<Request> reqs(4);
  const int max_new[] = {3, 10, 2, 10};
  for (std::size_t i = 0; i < 4; ++i) reqs[i].max_new_tokens = max_new[i];
  std::vector<stage02::BatchRow> rows(4);
  for (std::size_t i = 0; i < 4; ++i) {
    rows[i].request = &reqs[i];
    rows[i].index = i;
  }
  rows[0].out.tokens = {5, 6};     // 2 of 3: running
  rows[1].out.tokens = {5, 9};     // stop token 9: done, stopped
  rows[2].out.tokens = {4, 4};     // 2 of 2: done, not stopped
  rows[3].out.tokens = {9};        // already done earlier: left alone
  rows[3].done = true;
  const std::vector<int> stops = {9};
  CHECK(stage02::retire_rows(rows, stops) == 1);
  CHECK_FALSE(rows[0].done);
  CHECK(rows[1].done);
  CHECK(rows[1].out.stopped);
  CHECK(rows[2].done);
  CHECK_FALSE(rows[2].out.stopped);
  CHECK_FALSE(rows[3].out.stopped);
  rows[0].out.tokens.push_back(1);  // its third token: now done too
  CHECK(stage02::retire_rows(rows, stops) == 0);
  CHECK(rows[0].done);
}
