#include "static_batch_engine.h"

#include <algorithm>
#include <numeric>

#include "batch_kv_cache.h"
#include "common/error.h"
#include "common/timer.h"
#include "padded_batch.h"

namespace llm::stage02 {

namespace {
constexpr int kPadId = 0;  // any valid id: pad columns are computed but never attended to
}

int retire_rows(std::vector<BatchRow>& rows, std::span<const int> stop_ids) {
  int running = 0;
  // BEGIN EXERCISE(retire-rows): a row ends on a stop token or at max_new_tokens; it keeps its slot
  for (BatchRow& row : rows) {
    if (row.done) continue;
    const int last = row.out.tokens.back();
    if (is_stop(stop_ids, last)) {
      row.out.stopped = true;
      row.done = true;
    } else if (static_cast<int>(row.out.tokens.size()) >= row.request->max_new_tokens) {
      row.done = true;
    }
    if (!row.done) ++running;
  }
  // END EXERCISE
  return running;
}

StaticBatchEngine::StaticBatchEngine(const ModelWeights& weights, std::vector<int> stop_ids, int batch_size)
    : w_(weights), stop_ids_(std::move(stop_ids)), batch_size_(batch_size) {
  if (batch_size < 1) throw Error("--batch " + std::to_string(batch_size) + ": must be at least 1");
}

std::vector<float> StaticBatchEngine::logits(const std::vector<int>& tokens) {
  BatchKvCache cache(w_.config, static_cast<int>(tokens.size()), {0});
  std::vector<int> positions(tokens.size()), rows(tokens.size());
  std::iota(positions.begin(), positions.end(), 0);
  std::iota(rows.begin(), rows.end(), 0);
  return forward_tokens(w_, tokens, positions, rows, cache, scratch_);
}

std::vector<RequestResult> StaticBatchEngine::run(const std::vector<Request>& requests, const TokenCallback& on_token) {
  stats_ = {};
  std::vector<RequestResult> results(requests.size());
  run_clock_.reset();  // token times are seconds since the run started
  const Timer& clock = run_clock_;
  std::size_t next = 0;
  while (next < requests.size()) {
    // The server is free: wait for the next request, then take every request that has arrived,
    // first come first served, up to the batch size.
    wait_until(clock, requests[next].arrival_s);
    std::vector<BatchRow> rows;
    while (next < requests.size() && static_cast<int>(rows.size()) < batch_size_ &&
           requests[next].arrival_s <= clock.seconds()) {
      const Request& req = requests[next];
      BatchRow row{&req, next, Sampler(req.sampling), result_for(req), false};
      const long long positions = static_cast<long long>(req.prompt.size()) + req.max_new_tokens;
      if (req.max_new_tokens <= 0) {
        results[next] = std::move(row.out);               // nothing to generate: it needs no slot
      } else if (positions > w_.config.context_length) {  // it can never run: refuse it, serve the others
        row.out.rejected = "needs " + std::to_string(positions) + " positions (prompt " +
                           std::to_string(req.prompt.size()) + " + max_new_tokens " +
                           std::to_string(req.max_new_tokens) + ") but the model's context is " +
                           std::to_string(w_.config.context_length);
        ++stats_.rejected;
        results[next] = std::move(row.out);
      } else {
        if (req.prompt.empty()) throw Error("request " + req.id + ": empty prompt");
        rows.push_back(std::move(row));
      }
      ++next;
    }
    if (rows.empty()) continue;
    run_batch(rows, on_token);
    for (BatchRow& row : rows) results[row.index] = std::move(row.out);
  }
  return results;
}

void StaticBatchEngine::run_batch(std::vector<BatchRow>& rows, const TokenCallback& on_token) {
  const ModelConfig& c = w_.config;
  const int B = static_cast<int>(rows.size());
  const auto vocab = static_cast<std::size_t>(c.vocab_size);
  std::vector<std::vector<int>> prompts;
  int max_new = 0;
  for (const BatchRow& row : rows) {
    prompts.push_back(row.request->prompt);
    max_new = std::max(max_new, row.request->max_new_tokens);
    if (static_cast<long long>(row.request->prompt.size()) + row.request->max_new_tokens > c.context_length)
      throw Error("request " + row.request->id + ": does not fit the context (run() refuses it before)");
  }
  const PaddedBatch batch = pad_left(prompts, kPadId);
  const int L = batch.columns;
  // Every row gets the same slab: the longest prompt plus the longest generation.
  BatchKvCache cache(c, L + max_new - 1, batch.pad);
  const double weight_bytes = weight_bytes_per_step(w_);
  const std::size_t bpt = stage01::KvCache::bytes_per_token(c);
  stats_.kv_bytes_allocated = std::max(stats_.kv_bytes_allocated, cache.bytes_allocated());
  for (int p : batch.pad) stats_.padded_tokens += p;

  // Prefill: all prompts in one pass; each row's logits come from its last column.
  std::vector<int> logit_rows(static_cast<std::size_t>(B)), tokens(static_cast<std::size_t>(B)),
      positions(static_cast<std::size_t>(B));
  for (int r = 0; r < B; ++r) logit_rows[static_cast<std::size_t>(r)] = r * L + L - 1;
  std::vector<float> logits = forward_tokens(w_, batch.tokens, batch.positions, logit_rows, cache, scratch_);
  std::iota(logit_rows.begin(), logit_rows.end(), 0);  // from now on one token per row

  for (int step = 0;; ++step) {
    // Sample one token for every running row.
    for (int r = 0; r < B; ++r) {
      BatchRow& row = rows[static_cast<std::size_t>(r)];
      if (row.done) continue;
      const float* lr = &logits[static_cast<std::size_t>(r) * vocab];
      row.out.error = non_finite_logits(lr, c.vocab_size, row.out.tokens.size());
      if (!row.out.error.empty()) {  // this row ends here; the others go on
        row.done = true;
        continue;
      }
      const int next = row.sampler.sample(lr, c.vocab_size);
      row.out.tokens.push_back(next);
      row.out.token_time_s.push_back(run_clock_.seconds());
      if (keep_logits_) row.out.logits.insert(row.out.logits.end(), lr, lr + vocab);
      if (on_token) on_token(row.index, next);
    }
    const int running = retire_rows(rows, stop_ids_);
    if (running == 0) break;

    // Decode: one column for every row, finished or not (that is the waste of static batching).
    const int column = L + step;
    double kv_read = 0.0;
    for (int r = 0; r < B; ++r) {
      const BatchRow& row = rows[static_cast<std::size_t>(r)];
      const auto i = static_cast<std::size_t>(r);
      tokens[i] = row.done ? kPadId : row.out.tokens.back();
      // A finished row's position may run past its own context; clamp it (its output is unused).
      positions[i] = std::min(column - batch.pad[i], c.context_length - 1);
      kv_read += static_cast<double>(column + 1 - batch.pad[i]) * static_cast<double>(bpt);
    }
    Timer step_timer;
    logits = forward_tokens(w_, tokens, positions, logit_rows, cache, scratch_);
    stats_.decode_seconds += step_timer.seconds();
    stats_.decode_steps += 1;
    stats_.decode_bytes += weight_bytes + kv_read;
    stats_.slot_steps += B;
    stats_.wasted_slot_steps += B - running;
  }
  std::size_t used = 0;
  for (const BatchRow& row : rows)
    used += (static_cast<std::size_t>(row.out.prompt_tokens) + row.out.tokens.size() - 1) * bpt;
  stats_.kv_bytes_used = std::max(stats_.kv_bytes_used, used);
}

}  // namespace llm::stage02
