#include "scheduler.h"

#include <algorithm>

#include "common/error.h"
#include "prefix_hash.h"

namespace llm::stage03 {

Scheduler::Scheduler(SchedulerConfig config, BlockPool& pool, int context_length)
    : config_(config), pool_(pool), context_length_(context_length) {
  if (config.max_running < 1) throw Error("--batch " + std::to_string(config.max_running) + ": must be at least 1");
  if (config.token_budget < 1)
    throw Error("--token-budget " + std::to_string(config.token_budget) + ": must be at least 1");
  if (config.max_queue < 1) throw Error("--max-queue " + std::to_string(config.max_queue) + ": must be at least 1");
}

std::string Scheduler::submit(std::size_t index, const Request& request) {
  const int prompt = static_cast<int>(request.prompt.size());
  const long long total = static_cast<long long>(prompt) + request.max_new_tokens;  // no int overflow
  if (prompt == 0) return "empty prompt";
  if (total > context_length_) {
    return "needs " + std::to_string(total) + " positions (prompt " + std::to_string(prompt) + " + max_new_tokens " +
           std::to_string(request.max_new_tokens) + ") but the model's context is " + std::to_string(context_length_);
  }
  // The last generated token is never run through the model, so it needs no K/V.
  const int blocks = blocks_for(static_cast<int>(total) - 1);
  if (blocks > pool_.num_blocks()) {
    return "needs " + std::to_string(blocks) + " KV blocks but the whole pool has " +
           std::to_string(pool_.num_blocks()) + " (raise --kv-blocks)";
  }
  if (static_cast<int>(waiting_.size()) >= config_.max_queue) {
    return "the queue is full (" + std::to_string(waiting_.size()) + " waiting, --max-queue " +
           std::to_string(config_.max_queue) + ")";
  }
  Sequence s;
  s.index = index;
  s.tokens = request.prompt;
  s.prompt_len = prompt;
  s.max_new_tokens = request.max_new_tokens;
  seqs_.push_back(std::move(s));
  waiting_.push_back(static_cast<int>(seqs_.size()) - 1);
  return "";
}

Chunk Scheduler::plan_chunk(int seq, int budget) const {
  const Sequence& s = sequence(seq);
  const int left = static_cast<int>(s.tokens.size()) - s.computed;
  const int count = std::min(left, budget);
  return Chunk{seq, s.computed, count, count == left};
}

void Scheduler::grow(Sequence& s, int tokens) {
  while (static_cast<int>(s.blocks.size()) < blocks_for(tokens)) s.blocks.push_back(pool_.allocate());
}

StepPlan Scheduler::schedule() {
  StepPlan plan;
  int budget = config_.token_budget;
  // 1. Running sequences, oldest first: a decode token each, or the next chunk of a prompt.
  for (std::size_t i = 0; i < running_.size() && budget > 0; ++i) {
    const int id = running_[i];
    Sequence& sq = seqs_[static_cast<std::size_t>(id)];
    // Proposals that the budget cannot take are dropped, so that the chunk still reaches the
    // end of the tokens (and samples): a verify row per proposal plus one.
    const int over = static_cast<int>(sq.tokens.size()) - sq.computed - budget;
    if (sq.proposed > 0 && over > 0) drop_proposals(sq, std::min(over, sq.proposed));
    const Chunk c = plan_chunk(id, budget);
    const int need = blocks_for(c.start + c.count) - static_cast<int>(sequence(id).blocks.size());
    bool preempted_self = false;
    while (need > pool_.free_blocks()) {  // make room: the newest running sequence steps back
      const int victim = running_.back();
      preempt(victim);
      ++plan.preempted;
      if (victim == id) {
        preempted_self = true;
        break;
      }
    }
    if (preempted_self) break;  // it was the newest: no running sequence is left after it
    grow(seqs_[static_cast<std::size_t>(id)], c.start + c.count);
    plan.chunks.push_back(c);
    plan.tokens += c.count;
    budget -= c.count;
  }
  // Proposals of running sequences the budget did not reach wait for no one: they are dropped.
  for (std::size_t i = 0; i < running_.size(); ++i) {
    Sequence& sq = seqs_[static_cast<std::size_t>(running_[i])];
    if (sq.proposed == 0) continue;
    const bool planned = std::any_of(plan.chunks.begin(), plan.chunks.end(),
                                     [&](const Chunk& c) { return c.seq == running_[i]; });
    if (!planned) drop_proposals(sq, sq.proposed);
  }
  // 2. New sequences, first come first served, unless memory was just short.
  while (plan.preempted == 0 && budget > 0 && !waiting_.empty() &&
         static_cast<int>(running_.size()) < config_.max_running) {
    if (!try_admit(budget, plan)) break;  // the head of the queue waits; nobody overtakes it
  }
  return plan;
}

bool Scheduler::try_admit(int& budget, StepPlan& plan) {
  const int id = waiting_.front();
  Sequence& s = seqs_[static_cast<std::size_t>(id)];
  // Its prompt's leading blocks may already be cached. Keep at least one token to compute: its
  // logits are what the next token is sampled from.
  const int bs = pool_.block_size();
  PrefixMatch hit;
  if (config_.prefix_caching) hit = match_prefix(pool_, s.tokens, (static_cast<int>(s.tokens.size()) - 1) / bs);
  for (int b : hit.blocks) pool_.retain(b);
  s.blocks = hit.blocks;
  s.hashes = hit.hashes;
  s.computed = static_cast<int>(hit.blocks.size()) * bs;

  // BEGIN EXERCISE(admission): admit only if the first chunk's blocks are free; then allocate, move to running, plan the chunk
  const Chunk c = plan_chunk(id, budget);
  const int need = blocks_for(c.start + c.count) - static_cast<int>(s.blocks.size());
  if (need > pool_.free_blocks()) {
    for (int b : s.blocks) pool_.release(b);  // undo: the cached blocks stay cached
    s.blocks.clear();
    s.hashes.clear();
    s.computed = 0;
    return false;
  }
  grow(s, c.start + c.count);
  waiting_.pop_front();
  running_.push_back(id);
  s.state = Sequence::State::running;
  plan.chunks.push_back(c);
  plan.tokens += c.count;
  budget -= c.count;
  // END EXERCISE
  counters_.prefix_hit_tokens += s.computed;
  return true;
}

void Scheduler::preempt(int seq) {
  Sequence& s = seqs_[static_cast<std::size_t>(seq)];
  drop_proposals(s, s.proposed);  // recomputed from verified tokens only
  // BEGIN EXERCISE(preempt): give every block back (last first), forget the computed tokens, requeue at the front
  for (auto b = s.blocks.rbegin(); b != s.blocks.rend(); ++b) pool_.release(*b);
  s.blocks.clear();
  s.hashes.clear();
  s.computed = 0;
  running_.erase(std::find(running_.begin(), running_.end(), seq));
  waiting_.push_front(seq);
  s.state = Sequence::State::waiting;
  // END EXERCISE
  ++s.preemptions;
  ++counters_.preemptions;
}

void Scheduler::commit(const StepPlan& plan) {
  const int bs = pool_.block_size();
  for (const Chunk& c : plan.chunks) {
    Sequence& s = seqs_[static_cast<std::size_t>(c.seq)];
    if (c.start != s.computed) throw Error("scheduler: chunk of sequence " + std::to_string(c.seq) + " is stale");
    // A decode chunk: the last verified token (plus any proposals riding along, stage 06).
    const int verified = static_cast<int>(s.tokens.size()) - s.proposed;
    const bool decode =
        c.count == 1 + s.proposed && c.start == verified - 1 && c.start >= s.prompt_len;
    if (!decode) counters_.prefill_tokens += c.count;
    s.computed += c.count;
    if (!config_.prefix_caching) continue;
    // Publish every block that this chunk filled with verified tokens, chaining each hash to the
    // one before it (a block holding a proposal waits until the proposal is accepted).
    for (auto b = s.hashes.size(); static_cast<int>(b + 1) * bs <= std::min(s.computed, verified); ++b) {
      const std::uint64_t parent = b == 0 ? kRootHash : s.hashes[b - 1];
      const std::span<const int> toks(s.tokens.data() + b * static_cast<std::size_t>(bs), static_cast<std::size_t>(bs));
      const std::uint64_t h = block_hash(parent, toks);
      pool_.publish(s.blocks[b], h, parent, toks);
      s.hashes.push_back(h);
    }
  }
}

void Scheduler::append(int seq, int token) {
  seqs_.at(static_cast<std::size_t>(seq)).tokens.push_back(token);
}

void Scheduler::drop_proposals(Sequence& s, int n) {
  s.tokens.resize(s.tokens.size() - static_cast<std::size_t>(n));
  s.proposed -= n;
}

void Scheduler::propose(int seq, std::span<const int> tokens) {
  Sequence& s = seqs_.at(static_cast<std::size_t>(seq));
  if (s.state != Sequence::State::running || s.proposed != 0 || s.computed + 1 != static_cast<int>(s.tokens.size()))
    throw Error("scheduler: sequence " + std::to_string(seq) + " cannot take proposals now");
  const long room = static_cast<long>(s.prompt_len) + s.max_new_tokens - static_cast<long>(s.tokens.size());
  if (static_cast<long>(tokens.size()) >= room)
    throw Error("scheduler: " + std::to_string(tokens.size()) + " proposals for sequence " + std::to_string(seq) +
                " would pass its max_new_tokens");
  s.tokens.insert(s.tokens.end(), tokens.begin(), tokens.end());
  s.proposed = static_cast<int>(tokens.size());
}

void Scheduler::resolve_proposals(int seq, int accepted) {
  Sequence& s = seqs_.at(static_cast<std::size_t>(seq));
  if (accepted < 0 || accepted > s.proposed)
    throw Error("scheduler: " + std::to_string(accepted) + " accepted of " + std::to_string(s.proposed) +
                " proposals of sequence " + std::to_string(seq));
  // BEGIN EXERCISE(kv-rollback) stage 06: drop the rejected proposals, cut computed back to the tokens kept, free the blocks past them (last first)
  drop_proposals(s, s.proposed - accepted);
  s.proposed = 0;
  s.computed = std::min(s.computed, static_cast<int>(s.tokens.size()));
  while (static_cast<int>(s.blocks.size()) > blocks_for(s.computed)) {
    pool_.release(s.blocks.back());
    s.blocks.pop_back();
  }
  // END EXERCISE
}

void Scheduler::finish(int seq) {
  Sequence& s = seqs_.at(static_cast<std::size_t>(seq));
  // Last block first: a prefix's tail is the part least likely to be shared, so it is reused first.
  for (auto b = s.blocks.rbegin(); b != s.blocks.rend(); ++b) pool_.release(*b);
  s.blocks.clear();
  s.hashes.clear();
  s.computed = 0;
  s.state = Sequence::State::finished;
  running_.erase(std::find(running_.begin(), running_.end(), seq));
}

long Scheduler::tokens_held() const {
  const int bs = pool_.block_size();
  std::vector<char> seen(static_cast<std::size_t>(pool_.num_blocks()), 0);
  long held = 0;
  for (int id : running_) {
    const Sequence& s = sequence(id);
    for (std::size_t k = 0; k < s.blocks.size(); ++k) {
      auto& mark = seen[static_cast<std::size_t>(s.blocks[k])];
      if (mark) continue;
      mark = 1;
      held += std::clamp(s.computed - static_cast<int>(k) * bs, 0, bs);
    }
  }
  return held;
}

void Scheduler::check() const {
  pool_.check();
  auto fail = [](const std::string& what) { throw Error("scheduler invariant broken: " + what); };
  std::vector<int> refs(static_cast<std::size_t>(pool_.num_blocks()), 0);
  if (static_cast<int>(running_.size()) > config_.max_running) fail("more running sequences than --batch");
  for (std::size_t id = 0; id < seqs_.size(); ++id) {
    const Sequence& s = seqs_[id];
    const std::string name = "sequence " + std::to_string(id);
    const bool in_running = std::count(running_.begin(), running_.end(), static_cast<int>(id)) == 1;
    const bool in_waiting = std::count(waiting_.begin(), waiting_.end(), static_cast<int>(id)) == 1;
    if (in_running != (s.state == Sequence::State::running) || in_waiting != (s.state == Sequence::State::waiting))
      fail(name + " is listed in the wrong queue");
    if (static_cast<int>(s.tokens.size()) - s.prompt_len > s.max_new_tokens) fail(name + " generated too many tokens");
    if (s.proposed != 0) fail(name + " has unverified proposals between steps");
    if (s.state != Sequence::State::running) {
      if (!s.blocks.empty() || s.computed != 0) fail(name + " holds blocks while not running");
      continue;
    }
    if (s.computed >= static_cast<int>(s.tokens.size())) fail(name + " has no token left to compute");
    if (static_cast<int>(s.blocks.size()) != blocks_for(s.computed))
      fail(name + " holds " + std::to_string(s.blocks.size()) + " blocks for " + std::to_string(s.computed) +
           " tokens");
    if (static_cast<int>(s.hashes.size()) * pool_.block_size() > s.computed) fail(name + " hashed an unfinished block");
    for (int b : s.blocks) ++refs[static_cast<std::size_t>(b)];
  }
  for (int b = 0; b < pool_.num_blocks(); ++b) {
    if (refs[static_cast<std::size_t>(b)] != pool_.ref_count(b))
      fail("block " + std::to_string(b) + " is listed by " + std::to_string(refs[static_cast<std::size_t>(b)]) +
           " tables but its reference count is " + std::to_string(pool_.ref_count(b)));
  }
}

}  // namespace llm::stage03
