// prompt_lookup_proposer.h: proposals without a second model (prompt lookup decoding, Saxena
// 2023; llama.cpp's "lookup"). The last n tokens of the sequence are searched for earlier in the
// prompt and the text so far; what followed their latest earlier occurrence is proposed. It pays
// where the output copies from the input (editing, summarising with quotes, code), and costs
// almost nothing where it finds no match (no proposal, a plain decode step).
#pragma once

#include <span>
#include <vector>

#include "proposer.h"

namespace llm::stage06 {

/// The tokens that followed the latest earlier occurrence of the last n tokens of `context`,
/// for n = max_ngram down to 1 (the longest match wins), at most k of them; empty when no suffix
/// of length <= max_ngram occurs earlier.
std::vector<int> lookup_continuation(std::span<const int> context, int max_ngram, int k);

/// Prompt lookup as a Proposer: deterministic, keeps no state.
class PromptLookupProposer : public Proposer {
 public:
  explicit PromptLookupProposer(int max_ngram = 3);
  void begin_run(int, int) override {}
  std::vector<Proposal> propose(std::span<const ProposalRequest> requests) override;
  void forget(int) override {}

 private:
  int max_ngram_;
};

}  // namespace llm::stage06
