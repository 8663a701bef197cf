#include "continuous_batch_engine.h"

#include <algorithm>
#include <numeric>
#include <optional>

#include "common/checked.h"
#include "common/error.h"
#include "common/sampler.h"
#include "common/timer.h"
#include "paged_attention.h"
#include "stages/01_kv_cache/kv_cache.h"

namespace llm::stage03 {

ContinuousBatchConfig continuous_batch_config(int batch, int token_budget, int block_size, int num_blocks,
                                              bool prefix_caching) {
  ContinuousBatchConfig c;
  c.scheduler.max_running = batch;
  c.scheduler.token_budget = token_budget;
  c.scheduler.prefix_caching = prefix_caching;
  c.block_size = block_size;
  c.num_blocks = num_blocks;
  return c;
}

ContinuousBatchConfig continuous_batch_config(const CliOptions& o) {
  ContinuousBatchConfig c = continuous_batch_config(o.batch, o.token_budget, o.block_size, o.kv_blocks, !o.no_prefix_cache);
  c.scheduler.max_queue = o.max_queue;
  return c;
}

ContinuousBatchEngine::ContinuousBatchEngine(const ModelWeights& weights, std::vector<int> stop_ids,
                                             ContinuousBatchConfig config, std::unique_ptr<StepExecutor> executor)
    : w_(weights), stop_ids_(std::move(stop_ids)), config_(config), executor_(std::move(executor)) {
  if (!executor_) executor_ = std::make_unique<CpuPagedExecutor>(weights);
  const ModelConfig& c = w_.config;
  if (config.block_size < 1) throw Error("--block-size " + std::to_string(config.block_size) + ": must be at least 1");
  if (config.num_blocks < 0)
    throw Error("--kv-blocks " + std::to_string(config.num_blocks) + ": must be 0 (auto) or more");
  num_blocks_ = config.num_blocks;
  if (num_blocks_ == 0) {
    const std::size_t block_bytes = stage01::KvCache::bytes_per_token(c) * static_cast<std::size_t>(config.block_size);
    const long full = static_cast<long>(config.scheduler.max_running) * ceil_div(c.context_length, config.block_size);
    const long cap = static_cast<long>(ContinuousBatchConfig::kDefaultPoolBytes / block_bytes);
    num_blocks_ = static_cast<int>(std::max(1L, std::min(full, cap)));
  }
  BlockPool probe(c, 1, config.block_size);                    // validates the block size now rather than at run()
  Scheduler check(config.scheduler, probe, c.context_length);  // and the scheduler's limits
}

std::vector<float> ContinuousBatchEngine::logits(const std::vector<int>& tokens) {
  const int n = static_cast<int>(tokens.size());
  if (n == 0) throw Error("logits: no tokens");
  BlockPool pool(w_.config, ceil_div(n, config_.block_size), config_.block_size, executor_->uses_pool_storage(),
                 executor_->kv_element_bytes(), executor_->kv_scale_bytes());
  std::vector<int> table(static_cast<std::size_t>(pool.num_blocks()));
  for (int& b : table) b = pool.allocate();
  executor_->begin_run(pool);
  std::vector<int> positions(tokens.size());
  std::iota(positions.begin(), positions.end(), 0);
  const StepRows chunk{table, 0, n};
  return executor_->forward(StepBatch{tokens, positions, positions, std::span<const StepRows>(&chunk, 1)});
}

std::vector<RequestResult> ContinuousBatchEngine::run(const std::vector<Request>& requests,
                                                      const TokenCallback& on_token) {
  std::vector<Request> list = requests;  // one loop for both modes; a copy of the ids is nothing beside a step
  return run_loop(list, nullptr, on_token);
}

void ContinuousBatchEngine::run_online(RequestFeed& feed, const TokenCallback& on_token) {
  std::vector<Request> arrived;
  run_loop(arrived, &feed, on_token);
}

std::vector<RequestResult> ContinuousBatchEngine::run_loop(std::vector<Request>& requests, RequestFeed* feed,
                                                           const TokenCallback& on_token) {
  const ModelConfig& c = w_.config;
  const auto vocab = static_cast<std::size_t>(c.vocab_size);
  stats_ = {};
  BlockPool pool(c, num_blocks_, config_.block_size, executor_->uses_pool_storage(), executor_->kv_element_bytes(),
                 executor_->kv_scale_bytes());
  Scheduler scheduler(config_.scheduler, pool, c.context_length);
  executor_->begin_run(pool);
  stats_.kv_pool_bytes = pool.bytes_total();
  const double weight_bytes = executor_->weight_bytes_per_step();
  const std::size_t bytes_per_token = pool.bytes_per_token();

  std::vector<RequestResult> results(requests.size());
  std::vector<std::optional<Sampler>> samplers(requests.size());
  std::size_t next = 0, ended = 0;
  Timer clock;  // token times are seconds since the run started
  // Online (stage 08): requests cancelled by their client, and those whose result was handed back.
  std::vector<char> cancelled(requests.size(), 0), over(requests.size(), 0);
  // Request r has ended: online, its result goes to the feed and its state is dropped, so a
  // long run holds only what its live requests need.
  auto end_request = [&](std::size_t r) {
    ++ended;
    if (!feed) return;
    over[r] = 1;
    samplers[r].reset();
    requests[r].prompt = {};
    feed->done(r, std::move(results[r]));
    results[r] = {};
  };

  // Requests that have arrived by now join the queue (or are refused, with the reason).
  auto arrive = [&] {
    for (; next < requests.size() && requests[next].arrival_s <= clock.seconds(); ++next) {
      const Request& req = requests[next];
      if (next > 0 && req.arrival_s < requests[next - 1].arrival_s)
        throw Error("request " + req.id + ": arrivals must be in order (arrival_s " + std::to_string(req.arrival_s) +
                    ")");
      results[next] = result_for(req);
      if (cancelled[next]) results[next].error = "cancelled";
      if (req.max_new_tokens <= 0 || cancelled[next]) {
        end_request(next);  // nothing to generate
        continue;
      }
      std::string why = scheduler.submit(next, req);
      if (!why.empty()) {
        results[next].rejected = why;
        ++stats_.rejected;
        end_request(next);
        continue;
      }
      samplers[next].emplace(req.sampling);
    }
  };

  if (policy_) {
    long long longest = feed ? c.context_length : 1;
    for (const Request& r : requests)
      longest = std::max<long long>(longest, static_cast<long long>(r.prompt.size()) + std::max(r.max_new_tokens, 0));
    policy_->begin_run(requests, static_cast<int>(std::min<long long>(longest, 1 << 30)));
  }
  // A sequence's request is done: its blocks go back, and the policy forgets it.
  auto retire = [&](int seq) {
    const std::size_t r = scheduler.sequence(seq).index;
    scheduler.finish(seq);
    if (policy_) policy_->end_sequence(seq);
    end_request(r);
  };
  // Online: a running request gives its blocks back now; a waiting one holds none and is
  // dropped when admitted, before it runs (below).
  auto cancel = [&](std::size_t r) {
    if (r >= requests.size() || over[r] || cancelled[r]) return;
    cancelled[r] = 1;
    results[r].error = "cancelled";
    for (int seq : scheduler.running()) {
      if (scheduler.sequence(seq).index == r) return retire(seq);
    }
  };
  std::vector<Request> arrived;
  std::vector<std::size_t> cancels;
  std::vector<int> tokens, positions, logit_rows;
  std::vector<StepRows> rows;
  while (feed || ended < requests.size()) {
    if (feed) {
      arrived.clear();
      cancels.clear();
      const bool idle = !scheduler.has_work();
      if (!feed->poll(scheduler, idle, arrived, cancels)) {
        if (!idle || !arrived.empty()) throw Error("request feed: ended the run with requests left");
        break;
      }
      const double now = clock.seconds();
      for (Request& q : arrived) {
        q.arrival_s = now;
        if (policy_) policy_->add_request(requests.size(), q);
        requests.push_back(std::move(q));
        results.emplace_back();
        samplers.emplace_back();
        cancelled.push_back(0);
        over.push_back(0);
      }
      for (std::size_t r : cancels) cancel(r);
    }
    arrive();
    if (!feed && ended == requests.size()) break;  // the last arrivals were all refused
    if (!scheduler.has_work()) {                    // idle: sleep until the next request arrives
      if (feed) continue;                           // (online: the feed's poll sleeps)
      if (next >= requests.size()) throw Error("scheduler: requests left unfinished with nothing queued");
      wait_until(clock, requests[next].arrival_s);
      continue;
    }
    if (policy_) policy_->before_step(scheduler);
    StepPlan plan = scheduler.schedule();
    if (plan.chunks.empty()) throw Error("scheduler: work is waiting but nothing could be scheduled");
    if (feed) {  // cancelled while waiting, just admitted: leave before running
      std::vector<Chunk> kept;
      for (const Chunk& ch : plan.chunks) {
        if (!cancelled[scheduler.sequence(ch.seq).index]) {
          kept.push_back(ch);
          continue;
        }
        plan.tokens -= ch.count;
        retire(ch.seq);
      }
      plan.chunks = std::move(kept);
      if (plan.chunks.empty()) continue;
    }

    // One flat list of rows: each chunk's tokens at their own positions, through its own table.
    tokens.clear();
    positions.clear();
    logit_rows.clear();
    rows.clear();
    bool all_decode = true;
    double kv_read = 0.0;
    for (const Chunk& ch : plan.chunks) {
      const Sequence& s = scheduler.sequence(ch.seq);
      for (int i = 0; i < ch.count; ++i) {
        tokens.push_back(s.tokens[static_cast<std::size_t>(ch.start + i)]);
        positions.push_back(ch.start + i);
      }
      // A sampling chunk's last row, and one row before it per proposal riding along (stage 06).
      if (ch.samples) {
        for (int i = s.proposed; i >= 0; --i) logit_rows.push_back(static_cast<int>(tokens.size()) - 1 - i);
      }
      rows.push_back(StepRows{s.blocks, ch.start, ch.count});
      all_decode = all_decode && ch.count == 1 + s.proposed;  // a verify chunk is a decode step too
      kv_read += static_cast<double>(ch.start + ch.count) * static_cast<double>(bytes_per_token);
    }
    Timer step_timer;
    const std::vector<float> logits = executor_->forward(StepBatch{tokens, positions, logit_rows, rows});
    const double step_s = step_timer.seconds();
    scheduler.commit(plan);
    stats_.slot_steps += static_cast<long>(plan.chunks.size());
    if (all_decode) {  // the decode roofline counts only steps without prompt work
      stats_.decode_steps += 1;
      stats_.decode_seconds += step_s;
      stats_.decode_bytes += weight_bytes + kv_read;
    }
    // Peak KV bytes handed to sequences (whole blocks) and peak bytes they fill (tokens).
    stats_.kv_bytes_allocated =
        std::max(stats_.kv_bytes_allocated, static_cast<std::size_t>(pool.used_blocks()) * pool.bytes_per_block());
    stats_.kv_bytes_used =
        std::max(stats_.kv_bytes_used, static_cast<std::size_t>(scheduler.tokens_held()) * bytes_per_token);

    // Sample for every chunk that reached the end of its sequence; retire the finished at once.
    std::size_t row = 0;
    for (const Chunk& ch : plan.chunks) {
      if (!ch.samples) continue;
      const Sequence& s = scheduler.sequence(ch.seq);
      const float* lr = &logits[row * vocab];
      const int n_rows = s.proposed + 1;
      row += static_cast<std::size_t>(n_rows);
      const std::size_t r = s.index;
      RequestResult& out = results[r];
      out.error = non_finite_logits(lr, c.vocab_size, out.tokens.size());
      if (!out.error.empty()) {  // this request ends here; the others go on
        if (s.proposed > 0) scheduler.resolve_proposals(ch.seq, 0);
        retire(ch.seq);
        continue;
      }
      std::vector<int> chosen;
      if (policy_) {
        int finite = 1;  // rows after a non-finite one cannot verify anything
        while (finite < n_rows && non_finite_logits(lr + finite * vocab, c.vocab_size, 0).empty()) ++finite;
        chosen = policy_->choose(ch.seq, s, lr, finite, *samplers[r]);
      } else {
        chosen.push_back(samplers[r]->sample(lr, c.vocab_size));
      }
      if (chosen.empty() || static_cast<int>(chosen.size()) > n_rows)
        throw Error("decode policy: " + std::to_string(chosen.size()) + " tokens from " + std::to_string(n_rows) +
                    " rows");
      if (s.proposed > 0) scheduler.resolve_proposals(ch.seq, static_cast<int>(chosen.size()) - 1);
      const double now = clock.seconds();
      for (std::size_t i = 0; i < chosen.size(); ++i) {
        const int token = chosen[i];
        out.tokens.push_back(token);
        out.token_time_s.push_back(now);
        if (keep_logits_) out.logits.insert(out.logits.end(), lr + i * vocab, lr + (i + 1) * vocab);
        if (on_token) on_token(r, token);
        // Accepted proposals are already the sequence's tokens; the last one is new.
        if (i + 1 == chosen.size()) scheduler.append(ch.seq, token);
        const bool stop = is_stop(stop_ids_, token);
        if (stop || static_cast<int>(out.tokens.size()) >= requests[r].max_new_tokens) {
          out.stopped = stop;
          retire(ch.seq);
          break;
        }
      }
    }
    if (step_hook_) step_hook_(scheduler);
  }
  const SchedulerCounters& n = scheduler.counters();
  stats_.preemptions = n.preemptions;
  stats_.prefill_tokens = n.prefill_tokens;
  stats_.prefix_hit_tokens = n.prefix_hit_tokens;
  blocks_in_use_after_run_ = pool.used_blocks();
  return results;
}

}  // namespace llm::stage03
