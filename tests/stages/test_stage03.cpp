// Stage 03 (continuous batching over a paged KV pool) against stage 01 (one request at a time):
//   [vs-stage01]   staggered arrivals: every request's tokens and logits equal its solo run, on
//                  the default model and random awkward shapes, at several batch caps, token
//                  budgets (chunked prefill) and block sizes
//   [preemption]   a pool too small for everyone forces preemption; every request still ends
//                  with its solo output
//   [prefix]       shared prefixes: identical outputs with and without prefix caching, and
//                  exactly the expected number of prompt tokens served from the cache
//   [invariants]   the scheduler and pool driven by a stand-in model for many random seeds
//                  (arrivals, lengths, pool sizes, budgets, shared prefixes): every invariant
//                  holds after every step, every K/V read through a block table is the one that
//                  was written for that token, and all blocks are free at the end
//   [stats]        KV bytes, slot-steps and prefill counters
//   [errors]       requests that can never run are rejected with the reason; the rest run
//   [ex:NAME]      each exercise against its reference
#include <catch2/catch.hpp>
#include <algorithm>
#include <numeric>
#include <random>

#include "common/error.h"
#include "common/model_weights.h"
#include "common/stage_main.h"
#include "stages/01_kv_cache/cached_attention.h"
#include "stages/01_kv_cache/kv_engine.h"
#include "stages/03_continuous_batching/block_pool.h"
#include "stages/03_continuous_batching/continuous_batch_engine.h"
#include "stages/03_continuous_batching/paged_attention.h"
#include "stages/03_continuous_batching/prefix_hash.h"
#include "stages/03_continuous_batching/scheduler.h"
#include "tests/helpers/checks.h"
#include "tests/helpers/random_model.h"
#include "tests/helpers/random_requests.h"

using namespace llm;
using test::check_rows;
using test::randn;

namespace {
constexpr double kTol = 1e-4;

stage03::ContinuousBatchConfig config_of(int batch, int budget, int block_size, int num_blocks = 0,
                                         bool prefix = true) {
  stage03::ContinuousBatchConfig c;
  c.scheduler.max_running = batch;
  c.scheduler.token_budget = budget;
  c.scheduler.prefix_caching = prefix;
  c.block_size = block_size;
  c.num_blocks = num_blocks;
  return c;
}

/// Runs every request alone through stage 01 (arrivals ignored: they do not change a solo run).
std::vector<RequestResult> solo_results(const ModelWeights& w, std::vector<Request> reqs, const std::vector<int>& stops) {
  for (auto& r : reqs) r.arrival_s = 0.0;
  stage01::KvCacheEngine solo(w, stops);
  solo.set_keep_logits(true);
  return solo.run(reqs, nullptr);
}

/// Runs the requests through stage 03 with `config`, checking the scheduler's invariants after
/// every step, and compares each request with its solo result. Returns the engine's counters.
EngineStats check_equals_solo(const ModelWeights& w, const std::vector<Request>& reqs, const std::vector<int>& stops,
                              const std::vector<RequestResult>& want, const stage03::ContinuousBatchConfig& config) {
  const auto vocab = static_cast<std::size_t>(w.config.vocab_size);
  stage03::ContinuousBatchEngine engine(w, stops, config);
  engine.set_keep_logits(true);
  long steps = 0;
  engine.set_step_hook([&](const stage03::Scheduler& s) {
    ++steps;
    s.check();
  });
  std::vector<std::pair<std::size_t, int>> streamed;
  const auto got = engine.run(reqs, [&](std::size_t r, int t) { streamed.emplace_back(r, t); });
  INFO("batch " << config.scheduler.max_running << ", budget " << config.scheduler.token_budget << ", block size "
                << config.block_size << ", blocks " << engine.num_blocks() << ", prefix caching "
                << config.scheduler.prefix_caching);
  REQUIRE(got.size() == reqs.size());
  CHECK(steps > 0);
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    INFO("request " << i << " (prompt " << reqs[i].prompt.size() << ", max_new " << reqs[i].max_new_tokens
                    << ", arrival " << reqs[i].arrival_s << ")");
    CHECK(got[i].id == reqs[i].id);
    CHECK(got[i].rejected.empty());
    CHECK(got[i].tokens == want[i].tokens);
    CHECK(got[i].stopped == want[i].stopped);
    if (got[i].tokens == want[i].tokens) check_rows(got[i].logits, want[i].logits, vocab, kTol);
    std::vector<int> mine;
    for (const auto& [r, t] : streamed)
      if (r == i) mine.push_back(t);
    CHECK(mine == got[i].tokens);
  }
  CHECK(engine.blocks_in_use_after_run() == 0);  // every block went back to the pool
  return engine.stats();
}

/// Arrivals a few milliseconds apart, so that requests join a batch that is already running.
void stagger(std::vector<Request>& reqs, double gap_s) {
  for (std::size_t i = 0; i < reqs.size(); ++i) reqs[i].arrival_s = gap_s * static_cast<double>(i);
}

}  // namespace

TEST_CASE("stage 03 gives every request its solo stage-01 result, with staggered arrivals", "[vs-stage01]") {
  {
    INFO("default model");
    Model m = load_model(test::repo_path("datasets/models/tiny-target.gguf"));
    auto reqs = test::default_model_requests(m);
    stagger(reqs, 0.003);
    const auto stops = m.tokenizer->stop_ids();
    const auto want = solo_results(m.weights, reqs, stops);
    check_equals_solo(m.weights, reqs, stops, want, config_of(16, 256, 16));
    check_equals_solo(m.weights, reqs, stops, want, config_of(3, 7, 5));   // chunked prefill, odd blocks
    check_equals_solo(m.weights, reqs, stops, want, config_of(2, 64, 1));  // one token per block
  }
  for (const auto& spec : test::awkward_specs()) {
    INFO("shape " << spec.name);
    const ModelWeights w = test::make_random_weights(spec);
    auto reqs = test::random_requests(spec.vocab, spec.context, spec.seed, 9);
    stagger(reqs, 0.001);
    const auto want = solo_results(w, reqs, {2});
    check_equals_solo(w, reqs, {2}, want, config_of(16, 256, 4));
    check_equals_solo(w, reqs, {2}, want, config_of(4, 3, 3));
  }
}

TEST_CASE("stage 03 preempts when the pool runs out and every request still gets its solo output", "[preemption]") {
  {
    INFO("default model");
    Model m = load_model(test::repo_path("datasets/models/tiny-target.gguf"));
    auto reqs = test::default_model_requests(m);
    const auto stops = m.tokenizer->stop_ids();
    const auto want = solo_results(m.weights, reqs, stops);
    // Enough blocks for the largest request alone, far too few for all six at once.
    int largest = 0;
    for (const auto& r : reqs) largest = std::max(largest, static_cast<int>(r.prompt.size()) + r.max_new_tokens - 1);
    const int bs = 4;
    const EngineStats s = check_equals_solo(m.weights, reqs, stops, want, config_of(6, 256, bs, (largest + bs - 1) / bs));
    CHECK(s.preemptions > 0);
  }
  for (const auto& spec : test::awkward_specs()) {
    INFO("shape " << spec.name);
    const ModelWeights w = test::make_random_weights(spec);
    auto reqs = test::random_requests(spec.vocab, spec.context, spec.seed + 1, 8);  // all at t = 0
    const auto want = solo_results(w, reqs, {});
    int largest = 0;
    for (const auto& r : reqs) largest = std::max(largest, static_cast<int>(r.prompt.size()) + r.max_new_tokens - 1);
    for (int bs : {1, 3}) {
      const EngineStats s =
          check_equals_solo(w, reqs, {}, want, config_of(8, 5, bs, (largest + bs - 1) / bs, /*prefix=*/bs == 3));
      CHECK(s.preemptions > 0);
    }
  }
}

TEST_CASE("prefix caching shares a system prompt's blocks and changes no output", "[prefix]") {
  const ModelWeights w = test::make_random_weights(test::awkward_specs()[1]);
  const int ctx = w.config.context_length;
  std::mt19937_64 rng(11);
  const int shared = ctx / 3;  // the system prompt
  std::vector<int> system;
  for (int i = 0; i < shared; ++i) system.push_back(3 + static_cast<int>(rng() % 40));
  std::vector<Request> reqs;
  for (int i = 0; i < 6; ++i) {
    Request r;
    r.id = std::string("p").append(std::to_string(i));  // not "p" + ...: GCC 12 -Wrestrict false positive
    r.prompt = system;
    r.prompt.push_back(44 + i);  // each suffix starts differently: only the system prompt is shared
    for (int t = 0; t < i % 4; ++t) r.prompt.push_back(3 + static_cast<int>(rng() % 40));
    r.max_new_tokens = 2 + i;
    reqs.push_back(r);
  }
  const auto want = solo_results(w, reqs, {});
  long prompt_tokens = 0;
  for (const auto& r : reqs) prompt_tokens += static_cast<long>(r.prompt.size());
  for (int bs : {1, 4, 7}) {
    INFO("block size " << bs);
    // One request at a time: every later request finds the first one's full blocks cached.
    const EngineStats off = check_equals_solo(w, reqs, {}, want, config_of(1, 256, bs, 0, false));
    const EngineStats on = check_equals_solo(w, reqs, {}, want, config_of(1, 256, bs, 0, true));
    const int full = shared / bs;  // full blocks inside the shared part
    CHECK(off.prefix_hit_tokens == 0);
    CHECK(off.prefill_tokens == prompt_tokens);
    CHECK(on.prefix_hit_tokens == 5L * full * bs);
    CHECK(on.prefill_tokens == prompt_tokens - on.prefix_hit_tokens);
    // All at once, with room for every one: the same outputs whatever is cached when.
    check_equals_solo(w, reqs, {}, want, config_of(6, 9, bs, 0, true));
  }
}

TEST_CASE("prefix caching on the shared_prefix workload: same tokens, fewer prefill tokens", "[prefix]") {
  Model m = load_model(test::repo_path("datasets/models/tiny-target.gguf"));
  CliOptions o;
  o.workload = test::repo_path("datasets/workloads/shared_prefix.jsonl");
  auto reqs = build_requests(m, o);
  reqs.resize(12);
  for (auto& r : reqs) r.arrival_s = 0.0;
  const auto stops = m.tokenizer->stop_ids();
  const auto want = solo_results(m.weights, reqs, stops);
  const EngineStats off = check_equals_solo(m.weights, reqs, stops, want, config_of(4, 128, 16, 0, false));
  const EngineStats on = check_equals_solo(m.weights, reqs, stops, want, config_of(4, 128, 16, 0, true));
  // 96 shared tokens = 6 full blocks. The first batch computes them; later requests reuse them.
  CHECK(on.prefix_hit_tokens >= 8L * 96);
  CHECK(on.prefill_tokens + on.prefix_hit_tokens == off.prefill_tokens);
}

namespace {
// A stand-in for the model, for the randomized scheduler test: the "K" of token t at position p
// is t * 1000 + p (exact in fp32), written through the block table like the real K; the next
// token is a hash of the whole sequence, so any wrong or missing token changes every later one.
int next_token(const std::vector<int>& tokens, int vocab) {
  std::uint64_t h = 1469598103934665603ULL;
  for (int t : tokens) h = (h ^ static_cast<std::uint64_t>(t)) * 1099511628211ULL;
  h ^= h >> 29;  // FNV's low bits mix poorly: fold the high ones in
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 32;
  return static_cast<int>(h % static_cast<std::uint64_t>(vocab));
}

struct FakeRequest {
  Request request;
  long arrival_step = 0;
  std::vector<int> want;  // what it generates alone
};
}  // namespace

TEST_CASE("scheduler invariants hold at every step over random workloads", "[invariants]") {
  ModelConfig c;
  c.n_layers = 1;
  c.n_heads = c.n_kv_heads = 1;
  c.head_dim = 1;
  c.context_length = 96;
  const int vocab = 64, stop = 0;  // a 1-in-64 chance to stop at each token
  long preemptions = 0, hits = 0, rejected = 0;
  for (std::uint64_t seed = 1; seed <= 300; ++seed) {
    std::mt19937_64 rng(seed);
    auto pick = [&](int lo, int hi) { return lo + static_cast<int>(rng() % static_cast<std::uint64_t>(hi - lo + 1)); };
    const int bs = pick(1, 8);
    stage03::SchedulerConfig sc;
    sc.max_running = pick(1, 6);
    sc.token_budget = pick(1, 24);
    sc.max_queue = pick(0, 3) == 0 ? pick(1, 4) : 1000;
    sc.prefix_caching = pick(0, 3) != 0;
    // Shared prefixes: a few "system prompts" that requests start with.
    std::vector<std::vector<int>> systems(static_cast<std::size_t>(pick(1, 3)));
    for (auto& s : systems)
      for (int i = pick(0, 20); i > 0; --i) s.push_back(pick(1, vocab - 1));
    std::vector<FakeRequest> reqs(static_cast<std::size_t>(pick(1, 14)));
    long step = 0;
    int largest = 1;
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      Request& r = reqs[i].request;
      r.id = std::to_string(i);
      r.prompt = systems[rng() % systems.size()];
      for (int t = pick(1, 12); t > 0; --t) r.prompt.push_back(pick(1, vocab - 1));
      r.max_new_tokens = pick(1, 30);
      step += pick(0, 3);
      reqs[i].arrival_step = step;
      std::vector<int> seq = r.prompt;
      while (static_cast<int>(reqs[i].want.size()) < r.max_new_tokens) {
        const int t = next_token(seq, vocab);
        reqs[i].want.push_back(t);
        seq.push_back(t);
        if (t == stop) break;
      }
      largest = std::max(largest, static_cast<int>(r.prompt.size()) + r.max_new_tokens - 1);
    }
    // Sometimes just big enough for the largest request (heavy preemption), sometimes roomy.
    const int min_blocks = (largest + bs - 1) / bs;
    const int blocks = pick(0, 1) ? min_blocks + pick(0, 1) : min_blocks * pick(2, 6);
    stage03::BlockPool pool(c, blocks, bs);
    stage03::Scheduler sched(sc, pool, c.context_length);
    INFO("seed " << seed << ": block size " << bs << ", blocks " << blocks << ", batch " << sc.max_running
                 << ", budget " << sc.token_budget << ", queue " << sc.max_queue << ", prefix " << sc.prefix_caching);

    std::vector<std::vector<int>> got(reqs.size());
    std::vector<char> ended(reqs.size(), 0), refused(reqs.size(), 0);
    std::size_t next = 0, done = 0;
    for (long t = 0; done < reqs.size(); ++t) {
      REQUIRE(t < 100000);  // no request may wait forever
      for (; next < reqs.size() && reqs[next].arrival_step <= t; ++next) {
        if (!sched.submit(next, reqs[next].request).empty()) {
          refused[next] = ended[next] = 1;
          ++done;
        }
      }
      if (!sched.has_work()) continue;
      const stage03::StepPlan plan = sched.schedule();
      REQUIRE(!plan.chunks.empty());
      REQUIRE(plan.tokens <= sc.token_budget);
      // "Forward": write each new token's K through the table, then read every K back.
      for (const auto& ch : plan.chunks) {
        const stage03::Sequence& s = sched.sequence(ch.seq);
        for (int p = ch.start; p < ch.start + ch.count; ++p)
          pool.keys(s.blocks[static_cast<std::size_t>(p / bs)], 0)[p % bs] =
              static_cast<float>(s.tokens[static_cast<std::size_t>(p)] * 1000 + p);
      }
      for (const auto& ch : plan.chunks) {
        const stage03::Sequence& s = sched.sequence(ch.seq);
        for (int p = 0; p < ch.start + ch.count; ++p) {
          const float k = pool.keys(s.blocks[static_cast<std::size_t>(p / bs)], 0)[p % bs];
          if (k != static_cast<float>(s.tokens[static_cast<std::size_t>(p)] * 1000 + p)) {
            FAIL("sequence " << ch.seq << " reads K " << k << " at position " << p << ", wrote token "
                             << s.tokens[static_cast<std::size_t>(p)]);
          }
        }
      }
      sched.commit(plan);
      for (const auto& ch : plan.chunks) {
        if (!ch.samples) continue;
        const stage03::Sequence& s = sched.sequence(ch.seq);
        const int tok = next_token(s.tokens, vocab);
        got[s.index].push_back(tok);
        const std::size_t r = s.index;
        sched.append(ch.seq, tok);
        if (tok == stop || static_cast<int>(got[r].size()) >= reqs[r].request.max_new_tokens) {
          sched.finish(ch.seq);
          ended[r] = 1;
          ++done;
        }
      }
      sched.check();
    }
    CHECK(pool.free_blocks() == pool.num_blocks());
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      if (refused[i]) {
        CHECK(sc.max_queue < 1000);  // only a full queue refuses here: every request fits the pool
        continue;
      }
      INFO("request " << i);
      CHECK(got[i] == reqs[i].want);
    }
    preemptions += sched.counters().preemptions;
    hits += sched.counters().prefix_hit_tokens;
    rejected += static_cast<long>(std::count(refused.begin(), refused.end(), 1));
  }
  // The random workloads did exercise what they are meant to.
  CHECK(preemptions > 100);
  CHECK(hits > 100);
  CHECK(rejected > 0);
}

TEST_CASE("stage 03 counts KV bytes, slot-steps and prefill tokens", "[stats]") {
  const ModelWeights w = test::make_random_weights(test::awkward_specs()[1]);
  const std::size_t bpt = stage01::KvCache::bytes_per_token(w.config);
  Request r;
  r.id = "one";
  r.prompt.assign(5, 7);
  r.max_new_tokens = 3;
  stage03::ContinuousBatchEngine engine(w, {}, config_of(4, 256, 4, 10, false));
  const auto out = engine.run({r}, nullptr);
  REQUIRE(out[0].tokens.size() == 3);
  const EngineStats s = engine.stats();
  // 5 prompt tokens + 2 decoded (the 3rd token is never run) = 7 tokens in 2 blocks of 4.
  CHECK(s.kv_pool_bytes == 10 * 4 * bpt);
  CHECK(s.kv_bytes_allocated == 2 * 4 * bpt);
  CHECK(s.kv_bytes_used == 7 * bpt);
  CHECK(s.prefill_tokens == 5);
  CHECK(s.decode_steps == 2);
  CHECK(s.slot_steps == 3);
  CHECK(s.wasted_slot_steps == 0);
  CHECK(engine.blocks_in_use_after_run() == 0);
}

TEST_CASE("stage 03 rejects what can never run, with the reason, and serves the rest", "[errors]") {
  const ModelWeights w = test::make_random_weights(test::awkward_specs()[0]);
  const int ctx = w.config.context_length;
  CHECK_THROWS_WITH(stage03::ContinuousBatchEngine(w, {}, config_of(0, 8, 4)), Catch::Contains("--batch"));
  CHECK_THROWS_WITH(stage03::ContinuousBatchEngine(w, {}, config_of(2, 0, 4)), Catch::Contains("--token-budget"));
  CHECK_THROWS_WITH(stage03::ContinuousBatchEngine(w, {}, config_of(2, 8, 0)), Catch::Contains("--block-size"));
  CHECK_THROWS_WITH(stage03::ContinuousBatchEngine(w, {}, config_of(2, 8, 4, -1)), Catch::Contains("--kv-blocks"));

  std::vector<Request> reqs(4);
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    reqs[i].id = "q" + std::to_string(i);
    reqs[i].prompt.assign(3, 5);
    reqs[i].max_new_tokens = 3;
  }
  reqs[1].prompt.assign(static_cast<std::size_t>(ctx), 5);  // longer than the context
  reqs[2].prompt.assign(static_cast<std::size_t>(ctx / 2), 5);  // more than the whole pool of 2 blocks x 4
  stage03::ContinuousBatchEngine engine(w, {}, config_of(2, 8, 4, 2));
  const auto out = engine.run(reqs, nullptr);
  CHECK(out[0].rejected.empty());
  CHECK(out[0].tokens.size() == 3);
  CHECK_THAT(out[1].rejected, Catch::Contains("context"));
  CHECK_THAT(out[2].rejected, Catch::Contains("pool") && Catch::Contains("--kv-blocks"));
  CHECK(out[1].tokens.empty());
  CHECK(out[3].tokens.size() == 3);
  CHECK(engine.stats().rejected == 2);

  // A full queue refuses newcomers instead of growing without bound.
  stage03::ContinuousBatchConfig tight = config_of(1, 8, 4);
  tight.scheduler.max_queue = 1;
  stage03::ContinuousBatchEngine small(w, {}, tight);
  std::vector<Request> burst(3, reqs[0]);
  const auto b = small.run(burst, nullptr);
  CHECK(b[0].rejected.empty());
  CHECK_THAT(b[1].rejected, Catch::Contains("queue is full"));
  CHECK_THAT(b[2].rejected, Catch::Contains("queue is full"));

  std::vector<Request> unordered = {reqs[0], reqs[3]};
  unordered[0].arrival_s = 0.01;
  CHECK_THROWS_WITH(engine.run(unordered, nullptr), Catch::Contains("in order"));
}

TEST_CASE("exercise block-table: paged attention equals attention over a contiguous cache", "[ex:block-table]") {
  for (const auto& spec : test::awkward_specs()) {
    INFO("shape " << spec.name);
    const ModelWeights w = test::make_random_weights(spec);
    const ModelConfig& c = w.config;
    const auto qd = static_cast<std::size_t>(c.q_dim()), kvd = static_cast<std::size_t>(c.kv_dim());
    for (int bs : {1, 3, 16}) {
      const int len = c.context_length;
      const int nblocks = (len + bs - 1) / bs;
      stage03::BlockPool pool(c, nblocks + 3, bs);
      // A scrambled table: the sequence's blocks sit anywhere in the pool.
      std::vector<int> table(static_cast<std::size_t>(nblocks));
      std::mt19937_64 rng(spec.seed);
      std::vector<int> ids(static_cast<std::size_t>(pool.num_blocks()));
      std::iota(ids.begin(), ids.end(), 0);
      std::shuffle(ids.begin(), ids.end(), rng);
      std::copy_n(ids.begin(), nblocks, table.begin());
      const int layer = c.n_layers - 1;
      const auto k = randn(static_cast<std::size_t>(len) * kvd, 1), v = randn(static_cast<std::size_t>(len) * kvd, 2);
      for (int p = 0; p < len; ++p) {
        const int b = table[static_cast<std::size_t>(p / bs)];
        std::copy_n(&k[static_cast<std::size_t>(p) * kvd], kvd, pool.keys(b, layer) + static_cast<std::size_t>(p % bs) * kvd);
        std::copy_n(&v[static_cast<std::size_t>(p) * kvd], kvd, pool.values(b, layer) + static_cast<std::size_t>(p % bs) * kvd);
      }
      const auto q = randn(qd, 3);
      std::vector<float> scores(static_cast<std::size_t>(len) * static_cast<std::size_t>(c.n_heads));
      for (int pos : {0, bs - 1, bs, len / 2, len - 1}) {
        INFO("block size " << bs << ", position " << pos);
        std::vector<float> got(qd), want(qd);
        harness::poison(got);
        stage03::paged_attention(got.data(), q.data(), pos, pool, table, layer, c, scores.data());
        stage01::cached_attention(want.data(), q.data(), k.data(), v.data(), 1, pos, c.n_heads, c.n_kv_heads, c.head_dim);
        check_rows(got, want, qd, 1e-5);
      }
    }
  }
}

namespace {
ModelConfig one_float_config() {
  ModelConfig c;
  c.n_layers = 1;
  c.n_heads = c.n_kv_heads = 1;
  c.head_dim = 1;
  c.context_length = 64;
  return c;
}
Request request_of(int prompt_len, int max_new) {
  Request r;
  r.id = "len" + std::to_string(prompt_len);
  r.prompt.assign(static_cast<std::size_t>(prompt_len), 1);
  r.max_new_tokens = max_new;
  return r;
}
}  // namespace

TEST_CASE("exercise admission: first come first served while rows, budget and blocks last", "[ex:admission]") {
  const ModelConfig c = one_float_config();
  stage03::BlockPool pool(c, 6, 4);
  stage03::SchedulerConfig sc;
  sc.max_running = 3;
  sc.token_budget = 10;
  sc.prefix_caching = false;
  stage03::Scheduler s(sc, pool, c.context_length);
  REQUIRE(s.submit(0, request_of(6, 2)).empty());   // 2 blocks
  REQUIRE(s.submit(1, request_of(9, 2)).empty());   // would need 3 blocks for 9 tokens
  REQUIRE(s.submit(2, request_of(1, 2)).empty());
  auto plan = s.schedule();
  // Request 0 takes 6 tokens of the budget and 2 blocks; request 1 gets the 4 tokens left as a
  // first chunk (1 block); request 2 finds the budget spent and waits behind it.
  REQUIRE(plan.chunks.size() == 2);
  CHECK(plan.chunks[0].seq == 0);
  CHECK(plan.chunks[0].count == 6);
  CHECK(plan.chunks[0].samples);
  CHECK(plan.chunks[1].seq == 1);
  CHECK(plan.chunks[1].start == 0);
  CHECK(plan.chunks[1].count == 4);
  CHECK_FALSE(plan.chunks[1].samples);
  CHECK(plan.tokens == 10);
  CHECK(pool.free_blocks() == 3);
  CHECK(s.running() == std::vector<int>{0, 1});
  CHECK(s.waiting().size() == 1);
  s.commit(plan);
  s.append(0, 3);
  s.check();
  // Next step: decode for 0 (its 7th token fits block 1), the rest of 1's prompt (5 tokens: one
  // more block), then 2 is admitted into the last free block with the 4 tokens of budget left.
  plan = s.schedule();
  REQUIRE(plan.chunks.size() == 3);
  CHECK(plan.chunks[0].count == 1);
  CHECK(plan.chunks[1].count == 5);
  CHECK(plan.chunks[1].samples);
  CHECK(plan.chunks[2].seq == 2);
  CHECK(pool.free_blocks() == 0);
  s.commit(plan);
  s.append(0, 3);
  s.append(1, 3);
  s.append(2, 3);
  s.check();

  // No free block: a waiting request is not admitted, and keeps its place.
  stage03::BlockPool tiny(c, 1, 4);
  stage03::Scheduler t(sc, tiny, c.context_length);
  REQUIRE(t.submit(0, request_of(3, 1)).empty());
  REQUIRE(t.submit(1, request_of(2, 1)).empty());
  plan = t.schedule();
  REQUIRE(plan.chunks.size() == 1);
  CHECK(t.waiting() == std::deque<int>{1});
  CHECK(tiny.free_blocks() == 0);
}

TEST_CASE("exercise preempt: the newest request gives back its blocks and goes back to the front of the queue",
          "[ex:preempt]") {
  const ModelConfig c = one_float_config();
  stage03::BlockPool pool(c, 4, 2);
  stage03::SchedulerConfig sc;
  sc.prefix_caching = false;
  stage03::Scheduler s(sc, pool, c.context_length);
  REQUIRE(s.submit(0, request_of(3, 4)).empty());  // 2 blocks
  REQUIRE(s.submit(1, request_of(4, 4)).empty());  // 2 blocks
  auto plan = s.schedule();
  REQUIRE(plan.chunks.size() == 2);
  CHECK(pool.free_blocks() == 0);
  s.commit(plan);
  s.append(0, 5);
  s.append(1, 5);
  // Request 0's 4th token fits its second block; request 1's 5th token needs a third block and
  // the pool is empty: request 1 (the newest) is preempted, though it is the one asking.
  plan = s.schedule();
  CHECK(plan.preempted == 1);
  REQUIRE(plan.chunks.size() == 1);
  CHECK(plan.chunks[0].seq == 0);
  CHECK(s.running() == std::vector<int>{0});
  CHECK(s.waiting() == std::deque<int>{1});
  CHECK(s.sequence(1).blocks.empty());
  CHECK(s.sequence(1).computed == 0);
  CHECK(s.sequence(1).tokens.size() == 5);  // what it generated is kept, to be recomputed
  CHECK(s.sequence(1).preemptions == 1);
  CHECK(pool.free_blocks() == 2);
  s.commit(plan);
  s.append(0, 5);
  s.check();

  // preempt() on its own: the blocks come back and the sequence is first in line.
  REQUIRE(s.submit(2, request_of(1, 1)).empty());
  s.preempt(0);
  CHECK(s.running().empty());
  CHECK(s.waiting() == std::deque<int>{0, 1, 2});
  CHECK(pool.free_blocks() == pool.num_blocks());
  s.check();
}

TEST_CASE("exercise prefix-match: cached blocks are found along the hash chain only", "[ex:prefix-match]") {
  const ModelConfig c = one_float_config();
  const int bs = 3;
  stage03::BlockPool pool(c, 8, bs);
  const std::vector<int> seq = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};  // 3 full blocks and 2 more tokens
  // Publish its three full blocks as the scheduler would.
  std::vector<int> blocks;
  std::uint64_t parent = stage03::kRootHash;
  for (int i = 0; i < 3; ++i) {
    blocks.push_back(pool.allocate());
    const std::span<const int> toks(seq.data() + i * bs, bs);
    const std::uint64_t h = stage03::block_hash(parent, toks);
    pool.publish(blocks.back(), h, parent, toks);
    parent = h;
  }
  auto m = stage03::match_prefix(pool, seq, 10);
  CHECK(m.blocks == blocks);
  REQUIRE(m.hashes.size() == 3);
  CHECK(m.hashes[0] == stage03::block_hash(stage03::kRootHash, std::span<const int>(seq.data(), bs)));
  CHECK(stage03::match_prefix(pool, seq, 2).blocks == std::vector<int>{blocks[0], blocks[1]});
  // Differs in block 1: only block 0 matches.
  std::vector<int> other = seq;
  other[4] = 99;
  CHECK(stage03::match_prefix(pool, other, 10).blocks == std::vector<int>{blocks[0]});
  // Same tokens in block 1, different block 0: nothing matches (K/V depend on every earlier token).
  other = seq;
  other[0] = 99;
  CHECK(stage03::match_prefix(pool, other, 10).blocks.empty());
  // Fewer tokens than a block: nothing to match.
  CHECK(stage03::match_prefix(pool, std::vector<int>{1, 2}, 10).blocks.empty());
  // Freed blocks stay cached until reused; a block handed out again is forgotten.
  for (int b : blocks) pool.release(b);
  CHECK(stage03::match_prefix(pool, seq, 10).blocks.size() == 3);
  for (int i = 0; i < 5; ++i) pool.allocate();  // the 5 never-used blocks come first
  CHECK(stage03::match_prefix(pool, seq, 10).blocks.size() == 3);
  pool.allocate();  // now the oldest freed block (block 0 of the chain) is reused
  CHECK(stage03::match_prefix(pool, seq, 10).blocks.empty());
}
