// draft_model_proposer.h: a smaller model with the target's vocabulary proposes k tokens by
// decoding k times on its own. It keeps its own paged K/V (stage 03's BlockPool and paged
// attention) in step with the target: each sequence has a block table for the draft, and the
// tokens it has cached. Before proposing, the draft's cache is cut back to the longest prefix it
// shares with the verified tokens (rejected proposals' K/V go, exactly as on the target's side),
// and the tokens it has not seen yet (the target's correction, the last accepted proposal) are run
// as one chunk. All sequences' draft steps of one round run as one batched forward.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "common/forward.h"
#include "common/model_weights.h"
#include "proposer.h"
#include "stages/03_continuous_batching/block_pool.h"

namespace llm::stage06 {

/// Refuses a draft that cannot serve `target`: another vocabulary (size or pieces, when both
/// tokenizers are given) or a shorter context. Throws llm::Error naming `draft_name`.
void check_draft_fits(const ModelConfig& draft, const ModelConfig& target, const std::string& draft_name,
                      const Tokenizer* draft_tokenizer = nullptr, const Tokenizer* target_tokenizer = nullptr);

/// A draft model as a Proposer.
class DraftModelProposer : public Proposer {
 public:
  /// Keeps a reference to the draft's weights; they must outlive the proposer. block_size: tokens
  /// per block of the draft's own pool.
  DraftModelProposer(const ModelWeights& draft, int block_size = 16);
  void begin_run(int sequences, int tokens) override;
  std::vector<Proposal> propose(std::span<const ProposalRequest> requests) override;
  void forget(int seq) override;

  /// Blocks of the draft's pool in use now (tests: 0 once every sequence is forgotten).
  int blocks_in_use() const { return pool_ ? pool_->used_blocks() : 0; }

 private:
  struct DraftSequence {
    std::vector<int> table;   ///< the draft's block table
    std::vector<int> cached;  ///< tokens whose draft K/V are in the table, positions 0 .. size-1
  };
  /// Cuts `d` back to its first `keep` tokens, freeing blocks past them.
  void truncate(DraftSequence& d, int keep);
  /// Grows `d`'s table to hold `tokens` positions.
  void reserve(DraftSequence& d, int tokens);

  const ModelWeights& w_;
  int block_size_;
  std::optional<stage03::BlockPool> pool_;
  std::map<int, DraftSequence> seqs_;
  ForwardScratch scratch_;
};

}  // namespace llm::stage06
