// proposer.h: what proposes the tokens that the target then verifies. Something cheap guesses the
// next k tokens of each running sequence; one target forward scores them all (verifier in
// speculative_decoder.h). A proposer never decides what is emitted, so a bad guess costs speed,
// never correctness.
//
// A proposer that samples (a draft model at temperature > 0) returns, with each token, the
// distribution q it drew it from: rejection sampling needs q to keep the output distribution the
// target's. A deterministic proposer (prompt lookup, or any proposer at temperature 0) returns
// no q: its proposal is a point mass.
#pragma once

#include <span>
#include <vector>

#include "common/sampler.h"

namespace llm::stage06 {

/// One sequence's request for proposals.
struct ProposalRequest {
  int seq = 0;                   ///< the scheduler's sequence id (stable while the request lives)
  std::span<const int> context;  ///< prompt + every verified token so far, [n]
  int k = 0;                     ///< proposals wanted, at most (>= 1)
  Sampler* sampler = nullptr;    ///< draws for a sampling proposer; null = greedy (temperature 0)
};

/// What a proposer returns for one sequence.
struct Proposal {
  std::vector<int> tokens;             ///< 0 .. k proposed token ids
  std::vector<std::vector<float>> q;   ///< [tokens.size()][vocab]: each token's draft distribution; empty = point masses
};

/// Proposes tokens for a batch of sequences.
class Proposer {
 public:
  virtual ~Proposer() = default;
  /// A run starts: at most `sequences` sequences live at once, each at most `tokens` long.
  virtual void begin_run(int sequences, int tokens) = 0;
  /// Proposals for each request, in the same order.
  virtual std::vector<Proposal> propose(std::span<const ProposalRequest> requests) = 0;
  /// Sequence `seq` is done or no longer running: drop what is kept for it (a draft's K/V).
  virtual void forget(int seq) = 0;
};

}  // namespace llm::stage06
