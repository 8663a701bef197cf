// layer_skip_proposer.h: self-speculation by layer skipping (as in LayerSkip / Draft & Verify):
// the draft is the target's own first L layers followed by its final norm and classifier. No
// second file and the same vocabulary by construction; the early layers' guess is often the
// final answer for easy tokens. The draft keeps its own K/V for its L layers (a draft model's
// machinery, draft_model_proposer.h).
#pragma once

#include <memory>

#include "common/model_weights.h"
#include "draft_model_proposer.h"

namespace llm::stage06 {

/// The target's first `layers` layers, final norm and classifier as a model of their own (a copy
/// of those weights). Throws llm::Error naming --draft-layers unless 1 <= layers < the target's.
ModelWeights first_layers(const ModelWeights& target, int layers);

/// Layer skipping as a Proposer: a DraftModelProposer over first_layers(target, layers).
class LayerSkipProposer : public Proposer {
 public:
  LayerSkipProposer(const ModelWeights& target, int layers, int block_size = 16);
  void begin_run(int sequences, int tokens) override { draft_->begin_run(sequences, tokens); }
  std::vector<Proposal> propose(std::span<const ProposalRequest> requests) override {
    return draft_->propose(requests);
  }
  void forget(int seq) override { draft_->forget(seq); }

 private:
  ModelWeights weights_;
  std::unique_ptr<DraftModelProposer> draft_;
};

}  // namespace llm::stage06
