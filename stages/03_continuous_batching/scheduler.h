// scheduler.h: the one place that decides who runs in each step (iteration-level scheduling, as
// in Orca; block-granular memory, as in vLLM).
//
// Every step:
//   1. the running sequences go first, oldest first: each gets its next token (decode) or its
//      next prompt chunk (chunked prefill), while the step's token budget lasts. A sequence
//      whose next token needs a new block and finds the pool empty makes room by preempting
//      the newest running sequence (possibly itself): its blocks are released and it goes back
//      to the front of the queue, to be recomputed when it is admitted again.
//   2. if nothing was preempted, waiting requests are admitted first come first served while
//      there is a free row (max_running), budget and blocks; a new sequence starts with the
//      blocks of its prompt that are already cached (prefix caching).
// After the forward, commit() records what was computed and publishes newly full blocks; a
// sequence that samples gets its token with append(), and finish() frees its blocks at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <vector>

#include "block_pool.h"
#include "common/checked.h"
#include "common/engine.h"

namespace llm::stage03 {

/// The scheduler's limits.
struct SchedulerConfig {
  int max_running = 16;        ///< sequences in one step, at most (--batch)
  int token_budget = 256;      ///< tokens in one step, decode tokens and prompt chunks together (--token-budget)
  int max_queue = 256;         ///< waiting requests, at most; more are rejected (--max-queue)
  bool prefix_caching = true;  ///< reuse cached full blocks of earlier sequences (--no-prefix-cache turns it off)
};

/// A request as the scheduler sees it.
struct Sequence {
  std::size_t index = 0;    ///< the request's index in Engine::run's list
  std::vector<int> tokens;  ///< prompt, then every token generated so far
  int prompt_len = 0;
  int max_new_tokens = 0;
  int computed = 0;                   ///< tokens[0 .. computed) have their K/V in the pool
  std::vector<int> blocks;            ///< block table: block i holds positions [i*bs, (i+1)*bs)
  std::vector<std::uint64_t> hashes;  ///< chain hash of each full block published or matched so far
  int preemptions = 0;
  /// The last `proposed` tokens are proposals not yet verified (speculative decoding, stage 06):
  /// they ride along the next decode chunk, are never published to the prefix cache, and are
  /// dropped when the sequence is preempted or the step's budget cannot take them all.
  int proposed = 0;
  enum class State { waiting, running, finished } state = State::waiting;
};

/// One sequence's part of a step: tokens[start .. start + count) at those positions.
struct Chunk {
  int seq = 0;
  int start = 0;
  int count = 0;
  bool samples = false;  ///< the chunk reaches the end of tokens: its last row's logits give the next token
};

/// What one step runs.
struct StepPlan {
  std::vector<Chunk> chunks;
  int tokens = 0;     ///< sum of chunk counts (<= token_budget)
  int preempted = 0;  ///< sequences preempted while planning this step
};

/// Counters over a run.
struct SchedulerCounters {
  long preemptions = 0;
  long prefill_tokens = 0;     ///< prompt (or recomputed) tokens run through the model
  long prefix_hit_tokens = 0;  ///< prompt tokens taken from cached blocks instead
};

/// The scheduler: a queue, the running set, and the pool they share.
class Scheduler {
 public:
  /// context_length: the model's; a request that cannot fit it (or the pool) is rejected.
  Scheduler(SchedulerConfig config, BlockPool& pool, int context_length);

  /// A request arrives. Returns "" if it was queued, else why it was rejected: it can never run
  /// (longer than the context or the whole pool) or the queue is full.
  std::string submit(std::size_t index, const Request& request);
  /// Decides this step. Empty when nothing is waiting or running.
  StepPlan schedule();
  /// The plan's chunks have run: their tokens now have K/V in the pool.
  void commit(const StepPlan& plan);
  /// Appends the token sampled for sequence `seq`.
  void append(int seq, int token);
  /// Sequence `seq` has ended: its blocks go back to the pool now.
  void finish(int seq);

  // Speculative decoding (stage 06). A running sequence whose next step is a decode (every token
  // but its last computed) may carry proposals: its next chunk then holds them too, and after
  // the forward resolve_proposals() keeps the verified ones and rolls the rest back.
  /// Appends `tokens` to running sequence `seq` as unverified proposals.
  void propose(int seq, std::span<const int> tokens);
  /// Keeps the first `accepted` proposals of `seq` and drops the others with their K/V: the
  /// tokens go, `computed` is cut back to the tokens kept, and blocks past them return to the
  /// pool (the block table is trimmed). The caller then appends the target's next token.
  void resolve_proposals(int seq, int accepted);

  /// Admits the sequence at the head of the queue if a row, `budget` tokens and the blocks for
  /// its first chunk are available: takes its cached prefix, allocates, moves it to running and
  /// adds its chunk to `plan`. Returns false (and changes nothing) if it does not fit.
  bool try_admit(int& budget, StepPlan& plan);
  /// Gives back every block of running sequence `seq` and puts it at the front of the queue,
  /// to be recomputed from its first token when admitted again.
  void preempt(int seq);

  bool has_work() const { return !waiting_.empty() || !running_.empty(); }
  const Sequence& sequence(int seq) const { return seqs_.at(static_cast<std::size_t>(seq)); }
  const std::vector<int>& running() const { return running_; }
  const std::deque<int>& waiting() const { return waiting_; }
  const SchedulerCounters& counters() const { return counters_; }
  const SchedulerConfig& config() const { return config_; }
  const BlockPool& pool() const { return pool_; }
  /// Tokens whose K/V are held in blocks now, each shared block counted once.
  long tokens_held() const;
  /// Blocks a sequence needs for its first `tokens` tokens.
  int blocks_for(int tokens) const { return ceil_div(tokens, pool_.block_size()); }

  /// Checks every invariant between the sequences and the pool, and the pool's own, and throws
  /// llm::Error naming the first one broken. Meant to be called between steps (tests do, every step).
  void check() const;

 private:
  /// Allocates blocks until `s` has room for its first `tokens` tokens.
  void grow(Sequence& s, int tokens);
  Chunk plan_chunk(int seq, int budget) const;
  /// Drops the last `n` proposals of `s` (tokens that were never verified).
  static void drop_proposals(Sequence& s, int n);

  SchedulerConfig config_;
  BlockPool& pool_;
  int context_length_;
  std::vector<Sequence> seqs_;  ///< every sequence submitted, by id (ids are never reused)
  std::deque<int> waiting_;     ///< front = next to admit
  std::vector<int> running_;    ///< in order of admission: back = newest
  SchedulerCounters counters_;
};

}  // namespace llm::stage03
