// Stage 06 (speculative decoding) against stage 03 (the target alone):
//   [vs-stage03]  greedy, every proposer (draft model, prompt lookup, layer skip, the target as its
//                 own draft), k = 1..8, batch 1 and batched with staggered arrivals, a small token
//                 budget and a pool small enough to preempt: every request's tokens equal stage
//                 03's exactly and each token's logits are within 1e-4 of stage 03's, on the
//                 default pair and on random awkward shapes
//   [rollback]    300 random runs with random proposals (mostly rejected): the scheduler's
//                 check() after every step, every block of the target's and the draft's pools free
//                 at the end, greedy requests equal to stage 03
//   [sampling]    the output distribution is the target's: chi-square over 12,000 seeded runs of
//                 the joint law of the first three tokens (the first comes from the prompt's step,
//                 the second is the first speculative position, the third often follows a
//                 rejection), for a sampling draft model and a point-mass proposer; and the same
//                 test FAILS for two wrong acceptance rules (the test of the test)
//   [adaptive]    the adaptive k's choices from measured rates (and [vs-stage03] runs it)
//   [errors]      a draft with another vocabulary or a shorter context, --draft-layers out of range
//   [ex:NAME]     each exercise against an independent computation
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

#include "common/error.h"
#include "common/model_weights.h"
#include "stages/03_continuous_batching/continuous_batch_engine.h"
#include "stages/06_speculative_decoding/acceptance.h"
#include "stages/06_speculative_decoding/adaptive_k.h"
#include "stages/06_speculative_decoding/draft_model_proposer.h"
#include "stages/06_speculative_decoding/layer_skip_proposer.h"
#include "stages/06_speculative_decoding/prompt_lookup_proposer.h"
#include "stages/06_speculative_decoding/speculative_engine.h"
#include "tests/helpers/checks.h"
#include "tests/helpers/random_model.h"
#include "tests/helpers/random_requests.h"

using namespace llm;
using stage06::Proposer;

namespace {

constexpr double kTol = 1e-4;

/// Stage 03's settings: batch, token budget, block size, blocks (0 = auto), prefix caching.
using stage03::continuous_batch_config;

/// The target alone: stage 03, one request at a time, arrivals ignored.
std::vector<RequestResult> target_alone(const ModelWeights& w, std::vector<Request> reqs, const std::vector<int>& stops) {
  for (auto& r : reqs) r.arrival_s = 0.0;
  stage03::ContinuousBatchEngine engine(w, stops, continuous_batch_config(1, 256, 8));
  engine.set_keep_logits(true);
  return engine.run(reqs, nullptr);
}

std::vector<Request> all_greedy(std::vector<Request> reqs) {
  for (auto& r : reqs) r.sampling.temperature = 0.0f;
  return reqs;
}

/// Runs stage 06, checking the scheduler's invariants after every step; each greedy request must
/// equal `want` (tokens exactly, logits within kTol); every block is free at the end.
stage06::SpeculationStats check_equals_target(const ModelWeights& w, const std::vector<Request>& reqs,
                                              const std::vector<int>& stops, const std::vector<RequestResult>& want,
                                              const stage06::SpeculativeConfig& config,
                                              std::unique_ptr<Proposer> proposer, EngineStats* engine_stats = nullptr) {
  const auto vocab = static_cast<std::size_t>(w.config.vocab_size);
  auto* draft = dynamic_cast<stage06::DraftModelProposer*>(proposer.get());
  stage06::SpeculativeEngine engine(w, stops, config, std::move(proposer));
  engine.set_keep_logits(true);
  long steps = 0;
  engine.batching().set_step_hook([&](const stage03::Scheduler& s) {
    ++steps;
    s.check();
  });
  std::vector<std::vector<int>> streamed(reqs.size());
  const auto got = engine.run(reqs, [&](std::size_t r, int t) { streamed[r].push_back(t); });
  INFO("k " << config.k << ", batch " << config.batching.scheduler.max_running << ", budget "
            << config.batching.scheduler.token_budget << ", block size " << config.batching.block_size << ", blocks "
            << engine.batching().num_blocks());
  REQUIRE(got.size() == reqs.size());
  CHECK(steps > 0);
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    INFO("request " << reqs[i].id);
    CHECK(got[i].rejected.empty());
    CHECK(streamed[i] == got[i].tokens);
    if (reqs[i].sampling.temperature > 0.0f) continue;
    REQUIRE(got[i].tokens == want[i].tokens);
    REQUIRE(got[i].logits.size() == got[i].tokens.size() * vocab);
    test::check_rows(got[i].logits, want[i].logits, vocab, kTol);
  }
  CHECK(engine.batching().blocks_in_use_after_run() == 0);
  if (draft) CHECK(draft->blocks_in_use() == 0);
  if (engine_stats) *engine_stats = engine.stats();
  return engine.speculation();
}

/// The proposers a test runs, by name; `draft` is the draft model's weights (may be the target's).
std::unique_ptr<Proposer> proposer_named(const std::string& name, const ModelWeights& target,
                                         const ModelWeights& draft) {
  if (name == "draft") return std::make_unique<stage06::DraftModelProposer>(draft, 4);
  if (name == "self") return std::make_unique<stage06::DraftModelProposer>(target, 3);
  if (name == "ngram") return std::make_unique<stage06::PromptLookupProposer>(2);
  if (name == "layerskip") return std::make_unique<stage06::LayerSkipProposer>(target, target.config.n_layers / 2, 5);
  throw std::logic_error("no proposer " + name);
}

int largest_request(const std::vector<Request>& reqs) {
  int largest = 0;
  for (const auto& r : reqs) largest = std::max(largest, static_cast<int>(r.prompt.size()) + r.max_new_tokens - 1);
  return largest;
}

/// A random model whose vocabulary and context are the target's but nothing else.
ModelWeights draft_for(const test::RandomModelSpec& target) {
  test::RandomModelSpec d = target;
  d.name += "-draft";
  d.dim = 12;
  d.n_heads = 2;
  d.n_kv_heads = 1;
  d.hidden_dim = 20;
  d.n_layers = 1;
  d.seed = target.seed + 100;
  return test::make_random_weights(d);
}

}  // namespace

TEST_CASE("greedy speculation gives every request the target's own tokens and logits", "[vs-stage03]") {
  SECTION("the default pair (tiny-target, tiny-draft)") {
    const Model target = load_model(test::repo_path("datasets/models/tiny-target.gguf"));
    const Model draft = load_model(test::repo_path("datasets/models/tiny-draft.gguf"));
    const auto& tok = *target.tokenizer;
    const char* texts[] = {"Once upon a time", "The licensor grants you", "In the beginning God created the heaven",
                           "and the same, and the same"};
    std::vector<Request> reqs;
    for (int i = 0; i < 4; ++i) {
      Request r;
      r.id = std::string("t").append(std::to_string(i));
      r.prompt = tok.encode_prompt(texts[i], 200);
      r.max_new_tokens = 12 + 4 * i;
      r.arrival_s = 0.002 * i;  // staggered: later requests join a running batch
      reqs.push_back(r);
    }
    const auto stops = tok.stop_ids();
    const auto want = target_alone(target.weights, reqs, stops);
    for (const char* name : {"draft", "ngram", "layerskip", "self"}) {
      INFO("proposer " << name);
      long accepted = 0;
      for (int k = 1; k <= 8; ++k) {  // batch 1: one request at a time
        stage06::SpeculativeConfig config{continuous_batch_config(1, 256, 8), k};
        const std::vector<Request> one(reqs.begin(), reqs.begin() + 1);
        const std::vector<RequestResult> want_one(want.begin(), want.begin() + 1);
        accepted += check_equals_target(target.weights, one, stops, want_one, config,
                                        proposer_named(name, target.weights, draft.weights))
                        .accepted;
      }
      for (int k : {2, 5, 8}) {  // batched, a budget that cannot take every proposal, a pool that preempts
        const int bs = 4;
        stage06::SpeculativeConfig config{continuous_batch_config(4, 9, bs, (largest_request(reqs) + bs - 1) / bs), k};
        EngineStats e;
        accepted += check_equals_target(target.weights, reqs, stops, want, config,
                                        proposer_named(name, target.weights, draft.weights), &e)
                        .accepted;
        CHECK(e.preemptions > 0);
      }
      stage06::SpeculativeConfig adaptive{continuous_batch_config(4, 64, 4), 8};  // k chosen per step in 0..8
      adaptive.adaptive = true;
      accepted += check_equals_target(target.weights, reqs, stops, want, adaptive,
                                      proposer_named(name, target.weights, draft.weights))
                      .accepted;
      CHECK(accepted > 0);  // the accepted path was exercised, not only rejections
    }
  }
  SECTION("random awkward shapes") {
    for (const auto& spec : test::awkward_specs()) {
      INFO("shape " << spec.name);
      const ModelWeights w = test::make_random_weights(spec);
      const ModelWeights draft = draft_for(spec);
      const auto reqs = all_greedy(test::random_requests(spec.vocab, spec.context, spec.seed + 3, 6));
      const auto want = target_alone(w, reqs, {});
      std::vector<std::string> names = {"draft", "ngram", "self"};
      if (spec.n_layers > 1) names.push_back("layerskip");
      for (const auto& name : names) {
        INFO("proposer " << name);
        long preemptions = 0;
        for (int k : {1, 3, 8}) {
          const int bs = 3;
          check_equals_target(w, reqs, {}, want,
                              stage06::SpeculativeConfig{continuous_batch_config(1, 256, bs, 0, true), k},
                              proposer_named(name, w, draft));
          EngineStats e;
          check_equals_target(w, reqs, {}, want,
                              stage06::SpeculativeConfig{continuous_batch_config(6, 7, bs, (largest_request(reqs) + bs - 1) / bs), k},
                              proposer_named(name, w, draft), &e);
          preemptions += e.preemptions;
        }
        CHECK(preemptions > 0);
      }
    }
  }
}

namespace {

/// Proposes random tokens (mostly wrong), or the prompt-lookup continuation, of random length.
class RandomProposer : public Proposer {
 public:
  RandomProposer(int vocab, std::uint64_t seed) : vocab_(vocab), rng_(seed) {}
  void begin_run(int, int) override {}
  std::vector<stage06::Proposal> propose(std::span<const stage06::ProposalRequest> requests) override {
    std::vector<stage06::Proposal> out(requests.size());
    for (std::size_t i = 0; i < requests.size(); ++i) {
      const int n = static_cast<int>(rng_() % static_cast<std::uint64_t>(requests[i].k + 1));
      if (rng_() % 2) {
        out[i].tokens = stage06::lookup_continuation(requests[i].context, 2, n);
      } else {
        for (int t = 0; t < n; ++t) out[i].tokens.push_back(static_cast<int>(rng_() % static_cast<std::uint64_t>(vocab_)));
      }
    }
    return out;
  }
  void forget(int) override {}

 private:
  int vocab_;
  std::mt19937_64 rng_;
};

}  // namespace

TEST_CASE("rejected proposals are rolled back: invariants every step of 300 random runs", "[rollback]") {
  const auto specs = test::awkward_specs();
  std::mt19937_64 rng(2026);
  auto below = [&](int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); };
  long preempted = 0, proposed = 0, accepted = 0, sampled = 0;
  for (int run = 0; run < 300; ++run) {
    test::RandomModelSpec spec = specs[static_cast<std::size_t>(run) % specs.size()];
    spec.vocab = 6 + below(10);  // a small vocabulary: random guesses are sometimes right
    spec.seed = 500 + static_cast<std::uint64_t>(run % 7);
    INFO("run " << run << ", shape " << spec.name << ", vocab " << spec.vocab);
    const ModelWeights w = test::make_random_weights(spec);
    // every third request samples (temperature 0.9): rejection sampling with point masses
    auto reqs = test::random_requests(spec.vocab, spec.context, 9000 + static_cast<std::uint64_t>(run), 1 + below(6));
    const auto want = target_alone(w, reqs, {});
    const int bs = 1 + below(5);
    const int blocks = (largest_request(reqs) + bs - 1) / bs + below(4);
    stage06::SpeculativeConfig config{continuous_batch_config(1 + below(5), 2 + below(20), bs, blocks, below(2) == 0), 1 + below(8)};
    EngineStats e;
    const auto s = check_equals_target(w, reqs, {}, want, config,
                                       std::make_unique<RandomProposer>(spec.vocab, 77 + static_cast<std::uint64_t>(run)),
                                       &e);
    preempted += e.preemptions;
    proposed += s.proposed;
    accepted += s.accepted;
    for (const auto& r : reqs) sampled += r.sampling.temperature > 0.0f;
  }
  INFO("proposed " << proposed << ", accepted " << accepted << ", preemptions " << preempted);
  CHECK(preempted > 0);
  CHECK(accepted > 0);
  CHECK(accepted < proposed);  // there were rejections to roll back
  CHECK(sampled > 0);
}

TEST_CASE("rolling back trims the block table and never publishes an unverified token", "[ex:kv-rollback]") {
  const ModelWeights w = test::make_random_weights(test::awkward_specs()[0]);
  stage03::BlockPool pool(w.config, 8, 2);
  stage03::Scheduler s(stage03::SchedulerConfig{}, pool, w.config.context_length);
  Request r;
  r.prompt = {5, 6, 7};
  r.max_new_tokens = 10;
  REQUIRE(s.submit(0, r).empty());
  auto step = [&] {
    const stage03::StepPlan plan = s.schedule();
    s.commit(plan);
    return plan;
  };
  step();  // the prompt: positions 0-2, block 0 (positions 0-1) full and published
  s.append(0, 8);
  s.check();
  CHECK(pool.cached_blocks() == 1);
  const std::vector<int> guess = {9, 10, 11, 12};
  s.propose(0, guess);
  const stage03::StepPlan plan = step();  // the last token and 4 proposals: positions 3-7
  REQUIRE(plan.chunks.size() == 1);
  CHECK(plan.chunks[0].count == 5);
  CHECK(plan.chunks[0].samples);
  CHECK(s.sequence(0).computed == 8);
  CHECK(s.sequence(0).blocks.size() == 4);
  // Only block 1 (positions 2-3: 7, 8, both verified) is published; blocks 2 and 3 hold proposals.
  CHECK(pool.cached_blocks() == 2);
  const int used_before = pool.used_blocks();
  s.resolve_proposals(0, 1);  // 9 kept; 10, 11, 12 rejected
  const stage03::Sequence& q = s.sequence(0);
  CHECK(q.tokens == std::vector<int>{5, 6, 7, 8, 9});
  CHECK(q.computed == 5);
  CHECK(q.blocks.size() == 3);  // positions 0-4 need three blocks of two
  CHECK(pool.used_blocks() == used_before - 1);
  CHECK(pool.cached_blocks() == 2);
  s.append(0, 13);
  s.check();
  // The next step publishes block 2 (positions 4-5: 9 verified, 13 from the target).
  step();
  CHECK(pool.cached_blocks() == 3);
  s.append(0, 14);
  s.check();
  // Rejecting everything: the block table goes back to the verified tokens.
  s.propose(0, std::vector<int>{1, 2, 3});
  step();
  s.resolve_proposals(0, 0);
  CHECK(s.sequence(0).computed == 7);
  CHECK(s.sequence(0).blocks.size() == 4);
  s.append(0, 15);
  s.check();
  s.finish(0);
  CHECK(pool.used_blocks() == 0);
}

namespace {

/// Chi-square statistic of observed counts against probabilities, cells with an expected count
/// below 5 pooled into one; and the critical value at false-alarm rate 1e-4 (Wilson-Hilferty:
/// df (1 - 2/(9 df) + z sqrt(2/(9 df)))^3, z = 3.719).
struct ChiSquare {
  double stat = 0.0, critical = 0.0;
  int df = 0;
};

ChiSquare chi_square(const std::map<std::vector<int>, long>& counts, const std::map<std::vector<int>, double>& prob,
                     long n) {
  ChiSquare c;
  double pooled_expected = 0.0, pooled_observed = 0.0;
  int cells = 0;
  for (const auto& [cell, p] : prob) {
    const double expected = p * static_cast<double>(n);
    const auto it = counts.find(cell);
    const double observed = it == counts.end() ? 0.0 : static_cast<double>(it->second);
    if (expected < 5.0) {
      pooled_expected += expected;
      pooled_observed += observed;
      continue;
    }
    c.stat += (observed - expected) * (observed - expected) / expected;
    ++cells;
  }
  // Observed outcomes the target gives probability 0 to land in the pool too.
  for (const auto& [cell, count] : counts)
    if (!prob.count(cell)) pooled_observed += static_cast<double>(count);
  if (pooled_expected > 0.0) {
    c.stat += (pooled_observed - pooled_expected) * (pooled_observed - pooled_expected) / pooled_expected;
    ++cells;
  } else if (pooled_observed > 0.0) {
    c.stat = INFINITY;  // an outcome the target can never produce
  }
  c.df = cells - 1;
  const double df = c.df, z = 3.719;
  c.critical = df * std::pow(1.0 - 2.0 / (9.0 * df) + z * std::sqrt(2.0 / (9.0 * df)), 3.0);
  return c;
}

/// The target's law of the first three tokens after `prompt`, from stage 03's teacher-forced
/// logits and the sampler's distribution (temperature, top-k, top-p): independent of stage 06.
std::map<std::vector<int>, double> target_law(const ModelWeights& w, const std::vector<int>& prompt,
                                              const SamplingParams& params) {
  stage03::ContinuousBatchEngine engine(w, {}, continuous_batch_config(1, 256, 8));
  const Sampler sampler(params);
  const int vocab = w.config.vocab_size;
  auto next = [&](const std::vector<int>& ctx) {
    const std::vector<float> logits = engine.logits(ctx);
    return sampler.distribution(&logits[(ctx.size() - 1) * static_cast<std::size_t>(vocab)], vocab);
  };
  std::map<std::vector<int>, double> law;
  const auto p1 = next(prompt);
  for (int a = 0; a < vocab; ++a) {
    if (p1[static_cast<std::size_t>(a)] <= 0.0f) continue;
    std::vector<int> c1 = prompt;
    c1.push_back(a);
    const auto p2 = next(c1);
    for (int b = 0; b < vocab; ++b) {
      if (p2[static_cast<std::size_t>(b)] <= 0.0f) continue;
      std::vector<int> c2 = c1;
      c2.push_back(b);
      const auto p3 = next(c2);
      for (int c = 0; c < vocab; ++c) {
        if (p3[static_cast<std::size_t>(c)] <= 0.0f) continue;
        law[{a, b, c}] = static_cast<double>(p1[static_cast<std::size_t>(a)]) * p2[static_cast<std::size_t>(b)] *
                         p3[static_cast<std::size_t>(c)];
      }
    }
  }
  return law;
}

/// Runs n requests (seeds 0 .. n-1) of `prompt`, 4 new tokens each, and returns the counts of
/// their first three tokens, with the speculation counters.
std::map<std::vector<int>, long> draw(const ModelWeights& w, const std::vector<int>& prompt,
                                      const SamplingParams& params, long n, std::unique_ptr<Proposer> proposer,
                                      stage06::AcceptRule rule, stage06::SpeculationStats& stats) {
  std::vector<Request> reqs(static_cast<std::size_t>(n));
  for (long i = 0; i < n; ++i) {
    Request& r = reqs[static_cast<std::size_t>(i)];
    r.id = std::to_string(i);
    r.prompt = prompt;
    r.max_new_tokens = 4;
    r.sampling = params;
    r.sampling.seed = static_cast<std::uint64_t>(i);
  }
  stage06::SpeculativeConfig config{continuous_batch_config(64, 1024, 4), 2, rule};
  config.batching.scheduler.max_queue = static_cast<int>(n);  // every request queues at t = 0
  stage06::SpeculativeEngine engine(w, {}, config, std::move(proposer));
  const auto results = engine.run(reqs, nullptr);
  stats = engine.speculation();
  std::map<std::vector<int>, long> counts;
  for (const auto& r : results) {
    REQUIRE(r.tokens.size() == 4);
    ++counts[{r.tokens[0], r.tokens[1], r.tokens[2]}];
  }
  return counts;
}

/// Wrong rule 1: on a rejection, draw from p instead of the residual (a classic slip).
std::vector<int> resample_from_target(std::span<const int> proposals, const std::vector<std::vector<float>>& q,
                                      const float* logits, int vocab, Sampler& sampler) {
  std::vector<int> out;
  for (std::size_t i = 0; i < proposals.size(); ++i) {
    const auto p = sampler.distribution(logits + i * static_cast<std::size_t>(vocab), vocab);
    const auto d = static_cast<std::size_t>(proposals[i]);
    const float qd = q.empty() ? 1.0f : q[i][d];
    if (sampler.next_uniform() * qd < p[d]) {
      out.push_back(proposals[i]);
      continue;
    }
    out.push_back(Sampler::pick(p, sampler.next_uniform()));
    return out;
  }
  out.push_back(Sampler::pick(sampler.distribution(logits + proposals.size() * static_cast<std::size_t>(vocab), vocab),
                              sampler.next_uniform()));
  return out;
}

/// Wrong rule 2: keep every proposal (the draft's distribution, not the target's).
std::vector<int> accept_all(std::span<const int> proposals, const std::vector<std::vector<float>>&, const float* logits,
                            int vocab, Sampler& sampler) {
  std::vector<int> out(proposals.begin(), proposals.end());
  out.push_back(Sampler::pick(sampler.distribution(logits + proposals.size() * static_cast<std::size_t>(vocab), vocab),
                              sampler.next_uniform()));
  return out;
}

}  // namespace

TEST_CASE("rejection sampling keeps the target's distribution; wrong rules are caught", "[sampling]") {
  test::RandomModelSpec spec{"stat", 16, 2, 2, 1, 24, 9, 16, 10000.0f, 1e-5f, true, 21};
  const ModelWeights w = test::make_random_weights(spec);
  const ModelWeights draft = draft_for(spec);
  constexpr long kDraws = 12000;  // >= 10,000 seeded draws per distribution test
  struct Case {
    const char* name;
    std::vector<int> prompt;
    SamplingParams params;
  };
  const std::vector<Case> cases = {
      {"draft", {3, 1, 4}, {1.0f, 0, 1.0f, 0}},
      {"draft", {2, 7}, {0.7f, 6, 0.95f, 0}},  // top-k and top-p shape both p and q
      {"ngram", {1, 2, 3, 1, 2, 3, 1, 2}, {1.0f, 0, 1.0f, 0}},  // point-mass proposals
  };
  for (const Case& c : cases) {
    INFO("proposer " << c.name << ", temperature " << c.params.temperature << ", top-k " << c.params.top_k
                     << ", top-p " << c.params.top_p);
    const auto law = target_law(w, c.prompt, c.params);
    auto make = [&]() -> std::unique_ptr<Proposer> {
      if (std::string(c.name) == "ngram") return std::make_unique<stage06::PromptLookupProposer>(3);
      return std::make_unique<stage06::DraftModelProposer>(draft, 4);
    };
    stage06::SpeculationStats s;
    const auto right = chi_square(draw(w, c.prompt, c.params, kDraws, make(), stage06::accept_rejection_sampling, s),
                                  law, kDraws);
    INFO("exact rule: chi2 " << right.stat << " on " << right.df << " df, critical " << right.critical
                             << "; proposed " << s.proposed << ", accepted " << s.accepted);
    CHECK(right.df >= 10);
    CHECK(s.accepted > 0);
    CHECK(s.accepted < s.proposed);  // both branches ran: kept proposals and residual draws
    CHECK(right.stat < right.critical);

    for (auto [wrong_name, wrong] : {std::pair{"resample from p", &resample_from_target}, std::pair{"accept all", &accept_all}}) {
      stage06::SpeculationStats ws;
      const auto bad = chi_square(draw(w, c.prompt, c.params, kDraws, make(), wrong, ws), law, kDraws);
      INFO("wrong rule '" << wrong_name << "': chi2 " << bad.stat << " on " << bad.df << " df, critical "
                          << bad.critical);
      CHECK(bad.stat > bad.critical);
    }
  }
}

TEST_CASE("adaptive k tries every candidate, then keeps the best measured k per batch size", "[adaptive]") {
  stage06::AdaptiveK a(8);
  // Untried candidates first, two steps each: 0, 1, 3, 7 (k + 1 rows fill the matmul's 4-row
  // tiles), then the largest.
  std::vector<int> tried;
  for (int i = 0; i < 10; ++i) {
    const int k = a.choose(1);
    tried.push_back(k);
    a.record_step(1, k, 1 + k, 0.01);  // tokens per second rises with k at batch 1
  }
  CHECK(tried == std::vector<int>{0, 0, 1, 1, 3, 3, 7, 7, 8, 8});
  CHECK(a.rate(1, 8) == Approx(900.0));
  // Batch 16 is another bucket: measured from scratch; there speculation costs more than it
  // yields, and the climb stops at k = 1 (slower than 0) without trying the expensive ones,
  // after one step of it: half k = 0's rate is far slower.
  std::vector<int> climb;
  for (int i = 0; i < 5; ++i) {
    const int k = a.choose(16);
    climb.push_back(k);
    a.record_step(16, k, 16 * (1 + k / 4), 0.01 * (1 + k));
  }
  CHECK(climb == std::vector<int>{0, 0, 1, 0, 0});
  CHECK(a.rate(16, 3) == 0.0);
  long off = 0, probes = 0;
  for (int i = 0; i < 64; ++i) {
    const int k = a.choose(16);
    off += k == 0;
    probes += k == 1;
    CHECK((k == 0 || k == 1));
  }
  CHECK(off >= 62);  // a probe every 64 steps while speculation does not pay
  CHECK(probes >= 1);
  long best = 0;
  for (int i = 0; i < 32; ++i) {
    const int k = a.choose(1);
    best += k == 8;
    CHECK((k == 8 || k == 7));  // the best, or a probe next to it
  }
  CHECK(best >= 28);
  // Speculation must measure 3% faster than k = 0 to be chosen: a k only 2% faster is not, nor
  // does the climb go on past it.
  stage06::AdaptiveK m(8);
  for (int i = 0; i < 4; ++i) {
    const int k = m.choose(1);
    CHECK(k == i / 2);
    m.record_step(1, k, k == 0 ? 100 : 102, 1.0);
  }
  long zero = 0;
  for (int i = 0; i < 30; ++i) zero += m.choose(1) == 0;
  CHECK(zero >= 29);
  CHECK(m.rate(1, 3) == 0.0);
  // A k's rate is its average tokens over its average seconds: steps of 4 tokens in 1 s and 0
  // tokens in 1 s give 2 tokens/s, and so (to the moving average's weights) do 8 in 2 s and 0 in 2 s.
  stage06::AdaptiveK w(4);
  w.record_step(2, 1, 4, 1.0);
  w.record_step(2, 1, 0, 1.0);
  CHECK(w.rate(2, 1) == Approx(0.8 * 4 / 1.0));
  w.record_step(2, 2, 8, 2.0);
  w.record_step(2, 2, 0, 2.0);
  CHECK(w.rate(2, 2) == Approx(w.rate(2, 1)));
  CHECK(w.rate(3, 2) == Approx(w.rate(2, 1)));  // batch 2 and 3 share a bucket
  CHECK(w.rate(4, 2) == 0.0);
}

TEST_CASE("adaptive k does not try a k whose rows cross the cheap-row limit when predicted to lose", "[adaptive]") {
  // Batch 8, cheap rows 16: k = 1 is 16 rows, k = 2 and 3 are 24 and 32 (past the limit). k = 0
  // emits 8 tokens in 10 ms (800 tok/s); k = 1 emits 15 (acceptance 0.875: 1 + 0.875 per
  // sequence) in 18 ms (833 tok/s, 4% faster: enough to climb on). Linear seconds (8 ms more
  // per proposal) and acceptance 0.875 predict k = 3: 8 (1 - 0.875^4) / 0.125 = 26.484375 tokens
  // in 34 ms = 779 tok/s, and k = 2: 8 * 2.640625 / 0.026 = 812.5 tok/s, both below 833: neither
  // is tried, by the climb nor by the probes.
  const auto run = [](double k1_seconds, int steps) {
    stage06::AdaptiveK a(8, 16);
    std::vector<int> chose;
    for (int i = 0; i < steps; ++i) {
      const int k = a.choose(8);
      chose.push_back(k);
      a.record_step(8, k, k == 0 ? 8 : k == 1 ? 15 : 8 + 7 * k, k == 0 ? 0.010 : k == 1 ? k1_seconds : 0.010 + 0.012 * k);
    }
    return std::pair{chose, a.predicted_rate(8, 3)};
  };
  const auto [compute_bound, predicted] = run(0.018, 68);
  CHECK(predicted == Approx(26.484375 / 0.034));
  CHECK(std::vector<int>(compute_bound.begin(), compute_bound.begin() + 4) == std::vector<int>{0, 0, 1, 1});
  long ones = 0;
  for (int k : compute_bound) {
    CHECK(k <= 1);
    ones += k == 1;
  }
  CHECK(ones >= 60);  // the best, k = 1, but for probes of k = 0
  // Memory-bound (k = 1 costs 0.5 ms more than k = 0): the same acceptance predicts
  // 26.484375 tokens in 11.5 ms for k = 3, far above k = 1's 1429 tok/s; the climb tries it. It
  // takes 46 ms (29 tokens: 630 tok/s, far slower, one step), 4x the line: from then on the line
  // past 16 rows is scaled by 4, k = 3 predicted at 26.484375 / 0.046 and k = 2 at
  // 8 * 2.640625 / (0.011 * 4) = 480 tok/s, and the probes of k = 2 stop.
  const auto [memory_bound, after_jump] = run(0.0105, 69);
  CHECK(std::vector<int>(memory_bound.begin(), memory_bound.begin() + 5) == std::vector<int>{0, 0, 1, 1, 3});
  CHECK(after_jump == Approx(26.484375 / 0.046));
  for (std::size_t i = 5; i < memory_bound.size(); ++i) CHECK(memory_bound[i] <= 1);
}

TEST_CASE("a draft that cannot serve the target is refused", "[errors]") {
  test::RandomModelSpec spec = test::awkward_specs()[0];
  const ModelWeights w = test::make_random_weights(spec);
  test::RandomModelSpec other = spec;
  other.vocab = spec.vocab + 1;
  CHECK_THROWS_WITH(stage06::check_draft_fits(test::make_random_weights(other).config, w.config, "d.gguf"),
                    Catch::Contains("d.gguf") && Catch::Contains("vocabulary of 97"));
  other = spec;
  other.context = spec.context - 1;
  CHECK_THROWS_WITH(stage06::check_draft_fits(test::make_random_weights(other).config, w.config, "d.gguf"),
                    Catch::Contains("context of 39"));
  CHECK_NOTHROW(stage06::check_draft_fits(draft_for(spec).config, w.config, "d.gguf"));
  CHECK_THROWS_WITH(stage06::first_layers(w, 0), Catch::Contains("--draft-layers 0"));
  CHECK_THROWS_WITH(stage06::first_layers(w, 2), Catch::Contains("--draft-layers 2: must be between 1 and 1"));
  CHECK(stage06::first_layers(w, 1).layers.size() == 1);
  stage06::SpeculativeConfig config{continuous_batch_config(1, 256, 8), -1};
  CHECK_THROWS_WITH(stage06::SpeculativeEngine(w, {}, config, std::make_unique<stage06::PromptLookupProposer>()),
                    Catch::Contains("--spec-k -1"));
}

TEST_CASE("accept/reject keeps a proposal with probability min(1, p/q)", "[ex:accept-reject]") {
  // Logits of a 5-token vocabulary; temperature 1 so p = softmax(logits).
  const std::vector<float> logits = {1.0f, 0.2f, -0.5f, 0.7f, 0.0f, /* row 1 */ 0.3f, 0.3f, 0.3f, 0.3f, 0.3f};
  const int vocab = 5;
  std::vector<double> p(vocab);
  double z = 0.0;
  for (int i = 0; i < vocab; ++i) z += std::exp(static_cast<double>(logits[static_cast<std::size_t>(i)]));
  for (int i = 0; i < vocab; ++i) p[static_cast<std::size_t>(i)] = std::exp(static_cast<double>(logits[static_cast<std::size_t>(i)])) / z;
  const std::vector<std::vector<float>> q = {{0.05f, 0.05f, 0.8f, 0.05f, 0.05f}};
  constexpr int kRuns = 40000;
  long kept_rare = 0;  // proposal 2: q = 0.8 > p, kept with probability p(2)/0.8
  std::vector<long> first(vocab, 0);
  for (int seed = 0; seed < kRuns; ++seed) {
    Sampler s(SamplingParams{1.0f, 0, 1.0f, static_cast<std::uint64_t>(seed)});
    const std::vector<int> proposal = {2};
    const auto out = stage06::accept_rejection_sampling(proposal, q, logits.data(), vocab, s);
    REQUIRE(!out.empty());
    REQUIRE(out.size() <= 2);
    if (out.size() == 2) ++kept_rare;
    if (out.size() == 1) CHECK(out[0] != 2);  // after rejecting 2, the residual has no mass on 2
    ++first[static_cast<std::size_t>(out[0])];
  }
  const double want = p[2] / 0.8, sd = std::sqrt(want * (1 - want) / kRuns);
  CHECK(std::abs(static_cast<double>(kept_rare) / kRuns - want) < 5 * sd);
  // Proposals drawn from q would be kept with min(1, p/q); with the one fixed proposal 2 the
  // first token is 2 with probability p(2)/q(2) and otherwise follows the residual.
  // A proposal with p >= q is always kept.
  const std::vector<std::vector<float>> q_low = {{0.2f, 0.2f, 0.01f, 0.2f, 0.39f}};
  for (int seed = 0; seed < 200; ++seed) {
    Sampler s(SamplingParams{1.0f, 0, 1.0f, static_cast<std::uint64_t>(seed)});
    const std::vector<int> proposal = {0};  // p(0) ~ 0.33 > q(0)
    CHECK(stage06::accept_rejection_sampling(proposal, q_low, logits.data(), vocab, s).size() == 2);
  }
  // A point mass on a token with p > 0 is kept with probability p(token).
  long kept_point = 0;
  for (int seed = 0; seed < kRuns; ++seed) {
    Sampler s(SamplingParams{1.0f, 0, 1.0f, static_cast<std::uint64_t>(seed)});
    const std::vector<int> proposal = {3};
    kept_point += stage06::accept_rejection_sampling(proposal, {}, logits.data(), vocab, s).size() == 2;
  }
  const double sd3 = std::sqrt(p[3] * (1 - p[3]) / kRuns);
  CHECK(std::abs(static_cast<double>(kept_point) / kRuns - p[3]) < 5 * sd3);
}

TEST_CASE("the residual distribution is norm(max(0, p - q))", "[ex:residual]") {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (int trial = 0; trial < 50; ++trial) {
    const int vocab = 2 + trial % 9;
    std::vector<float> p(static_cast<std::size_t>(vocab)), q(p.size());
    float sp = 0, sq = 0;
    for (int i = 0; i < vocab; ++i) {
      p[static_cast<std::size_t>(i)] = trial % 3 == 0 && i == 0 ? 0.0f : u(rng);  // some zeros (top-k cut)
      q[static_cast<std::size_t>(i)] = u(rng);
      sp += p[static_cast<std::size_t>(i)];
      sq += q[static_cast<std::size_t>(i)];
    }
    for (auto& x : p) x /= sp;
    for (auto& x : q) x /= sq;
    const int token = trial % vocab;
    for (bool point : {false, true}) {
      // The definition, in double.
      std::vector<double> want(p.size());
      double total = 0.0;
      for (std::size_t i = 0; i < p.size(); ++i) {
        const double qi = point ? (static_cast<int>(i) == token ? 1.0 : 0.0) : q[i];
        want[i] = std::max(0.0, static_cast<double>(p[i]) - qi);
        total += want[i];
      }
      const auto got = stage06::residual_distribution(p, point ? std::vector<float>{} : q, token);
      REQUIRE(got.size() == p.size());
      for (std::size_t i = 0; i < p.size(); ++i) {
        INFO("trial " << trial << ", point mass " << point << ", token " << i);
        CHECK(std::abs(got[i] - (total > 0 ? want[i] / total : p[i])) < 1e-6);
      }
    }
  }
  // p = q leaves nothing: p itself.
  const std::vector<float> same = {0.25f, 0.75f};
  CHECK(stage06::residual_distribution(same, same, 0) == same);
}

TEST_CASE("prompt lookup proposes what followed the latest earlier match of the longest suffix", "[ex:ngram-lookup]") {
  // An independent brute force: every (n, start) pair, the longest n first, then the latest start.
  auto brute = [](const std::vector<int>& c, int max_ngram, int k) {
    const int len = static_cast<int>(c.size());
    for (int n = max_ngram; n >= 1; --n) {
      if (n >= len) continue;
      int best = -1;
      for (int start = 0; start + n < len; ++start) {
        bool same = true;
        for (int i = 0; i < n; ++i) same = same && c[static_cast<std::size_t>(start + i)] == c[static_cast<std::size_t>(len - n + i)];
        if (same) best = start;
      }
      if (best < 0) continue;
      std::vector<int> out;
      for (int i = best + n; i < len && static_cast<int>(out.size()) < k; ++i) out.push_back(c[static_cast<std::size_t>(i)]);
      return out;
    }
    return std::vector<int>{};
  };
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 500; ++trial) {
    std::vector<int> c(1 + rng() % 30);
    const int vocab = 2 + static_cast<int>(rng() % 6);
    for (auto& t : c) t = static_cast<int>(rng() % static_cast<std::uint64_t>(vocab));
    const int max_ngram = 1 + static_cast<int>(rng() % 4), k = 1 + static_cast<int>(rng() % 8);
    INFO("trial " << trial);
    CHECK(stage06::lookup_continuation(c, max_ngram, k) == brute(c, max_ngram, k));
  }
  const std::vector<int> text = {7, 1, 2, 3, 4, 9, 1, 2, 3, 5, 6, 1, 2, 3};
  CHECK(stage06::lookup_continuation(text, 3, 2) == std::vector<int>{5, 6});  // latest "1 2 3" is followed by 5 6
}
