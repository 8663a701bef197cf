#include "draft_model_proposer.h"

#include <algorithm>
#include <string>

#include "common/checked.h"
#include "common/error.h"
#include "stages/03_continuous_batching/paged_attention.h"

namespace llm::stage06 {

void check_draft_fits(const ModelConfig& draft, const ModelConfig& target, const std::string& draft_name,
                      const Tokenizer* draft_tokenizer, const Tokenizer* target_tokenizer) {
  if (draft.vocab_size != target.vocab_size)
    throw Error("--draft-model " + draft_name + ": vocabulary of " + std::to_string(draft.vocab_size) +
                " tokens, but the target's has " + std::to_string(target.vocab_size) +
                " (a draft must share the target's vocabulary)");
  if (draft_tokenizer && target_tokenizer) {
    for (int id = 0; id < target.vocab_size; ++id) {
      if (draft_tokenizer->piece(id) != target_tokenizer->piece(id))
        throw Error("--draft-model " + draft_name + ": token " + std::to_string(id) + " is " +
                    printable(draft_tokenizer->piece(id)) + " but the target's is " +
                    printable(target_tokenizer->piece(id)) + " (a draft must share the target's vocabulary)");
    }
  }
  if (draft.context_length < target.context_length)
    throw Error("--draft-model " + draft_name + ": context of " + std::to_string(draft.context_length) +
                " tokens, shorter than the target's " + std::to_string(target.context_length));
}

DraftModelProposer::DraftModelProposer(const ModelWeights& draft, int block_size) : w_(draft), block_size_(block_size) {
  if (block_size < 1) throw Error("draft model: block size " + std::to_string(block_size) + " must be at least 1");
}

void DraftModelProposer::begin_run(int sequences, int tokens) {
  seqs_.clear();
  const long blocks = checked_mul(static_cast<long>(std::max(sequences, 1)),
                                  static_cast<long>(ceil_div(std::max(tokens, 1), block_size_)), "draft KV blocks");
  pool_.reset();
  pool_.emplace(w_.config, narrow<int>(blocks, "draft KV blocks"), block_size_);
}

void DraftModelProposer::truncate(DraftSequence& d, int keep) {
  d.cached.resize(static_cast<std::size_t>(keep));
  while (static_cast<int>(d.table.size()) > ceil_div(keep, block_size_)) {
    pool_->release(d.table.back());
    d.table.pop_back();
  }
}

void DraftModelProposer::reserve(DraftSequence& d, int tokens) {
  while (static_cast<int>(d.table.size()) < ceil_div(tokens, block_size_)) {
    if (pool_->free_blocks() == 0) throw Error("draft model: its KV pool is full");
    d.table.push_back(pool_->allocate());
  }
}

void DraftModelProposer::forget(int seq) {
  const auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  truncate(it->second, 0);
  seqs_.erase(it);
}

std::vector<Proposal> DraftModelProposer::propose(std::span<const ProposalRequest> requests) {
  if (!pool_) throw Error("draft model: propose before begin_run");
  const int vocab = w_.config.vocab_size;
  std::vector<Proposal> out(requests.size());
  std::vector<DraftSequence*> state(requests.size());
  std::vector<int> next_pos(requests.size());  // the position of the token each sequence runs next

  // Round 0: each sequence's cache is cut back to what it shares with the verified tokens, and
  // the tokens it has not seen (at least the last one) run as one chunk per sequence.
  std::vector<int> tokens, positions, logit_rows;
  std::vector<stage03::StepRows> rows;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const ProposalRequest& r = requests[i];
    const int n = static_cast<int>(r.context.size());
    if (n == 0 || r.k < 1) throw Error("draft model: a proposal request needs context and k >= 1");
    DraftSequence& d = seqs_[r.seq];
    state[i] = &d;
    const auto diverge = std::mismatch(d.cached.begin(), d.cached.end(), r.context.begin(), r.context.end());
    const int shared = std::min(static_cast<int>(diverge.first - d.cached.begin()), n - 1);
    truncate(d, shared);
    // The draft runs the context's unseen tokens now and its own proposals 1 .. k-1 later.
    reserve(d, n + r.k - 1);
    for (int p = shared; p < n; ++p) {
      tokens.push_back(r.context[static_cast<std::size_t>(p)]);
      positions.push_back(p);
      d.cached.push_back(r.context[static_cast<std::size_t>(p)]);
    }
    logit_rows.push_back(static_cast<int>(tokens.size()) - 1);
    rows.push_back(stage03::StepRows{d.table, shared, n - shared});
    next_pos[i] = n;
  }

  std::vector<std::size_t> active(requests.size());  // requests still proposing, in row order
  for (std::size_t i = 0; i < active.size(); ++i) active[i] = i;
  for (int round = 0;; ++round) {
    stage03::PagedKvCache cache(*pool_, w_.config);
    cache.set_step(rows);
    const std::vector<float> logits = forward_tokens(w_, tokens, positions, logit_rows, cache, scratch_);
    tokens.clear();
    positions.clear();
    logit_rows.clear();
    rows.clear();
    std::vector<std::size_t> still;
    for (std::size_t a = 0; a < active.size(); ++a) {
      const std::size_t i = active[a];
      const ProposalRequest& r = requests[i];
      const float* lr = &logits[a * static_cast<std::size_t>(vocab)];
      int token;
      if (r.sampler) {  // draw from q, the draft's distribution under the request's sampling settings
        std::vector<float> q = r.sampler->distribution(lr, vocab);
        token = Sampler::pick(q, r.sampler->next_uniform());
        out[i].q.push_back(std::move(q));
      } else {
        token = static_cast<int>(std::max_element(lr, lr + vocab) - lr);
      }
      out[i].tokens.push_back(token);
      if (static_cast<int>(out[i].tokens.size()) == r.k) continue;  // its last proposal is never run
      DraftSequence& d = *state[i];
      tokens.push_back(token);
      positions.push_back(next_pos[i]);
      logit_rows.push_back(static_cast<int>(tokens.size()) - 1);
      rows.push_back(stage03::StepRows{d.table, next_pos[i], 1});
      d.cached.push_back(token);
      ++next_pos[i];
      still.push_back(i);
    }
    if (still.empty()) break;
    active = std::move(still);
  }
  return out;
}

}  // namespace llm::stage06
