// speculative_decoder.h: speculative decoding as stage 03's DecodePolicy. Before each step every
// running sequence that is decoding asks the proposer for up to k tokens (never past its
// max_new_tokens); they ride along its decode chunk, so one target forward scores k + 1 positions
// per sequence (the token budget counts them all). After the forward, the verifier
// (acceptance.h) keeps a prefix of the proposals and adds one token; the scheduler rolls the
// rest back (Scheduler::resolve_proposals: tokens, computed, block table). Sequences accept
// different counts in the same step; nothing else in the engine changes.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <vector>

#include "acceptance.h"
#include "adaptive_k.h"
#include "common/timer.h"
#include "proposer.h"
#include "stages/03_continuous_batching/continuous_batch_engine.h"

namespace llm::stage06 {

/// What speculation did over a run.
struct SpeculationStats {
  long steps = 0;             ///< target forwards (engine steps)
  long k_sum = 0;             ///< sum over steps of the k asked for (mean k = k_sum / steps)
  long verifies = 0;          ///< sequence-steps that verified at least one proposal
  long proposed = 0;          ///< proposals scored by the target
  long accepted = 0;          ///< of which kept
  long emitted = 0;           ///< tokens emitted by sequence-steps (kept proposals + 1 each)
  long sequence_steps = 0;    ///< sequence-steps that emitted tokens (with or without proposals)
  double draft_seconds = 0.0; ///< time spent proposing
  double acceptance_rate() const { return proposed ? static_cast<double>(accepted) / proposed : 0.0; }
  /// Tokens a sequence gains per verify step (1 + accepted proposals).
  double tokens_per_verify() const {
    return verifies ? static_cast<double>(emitted - (sequence_steps - verifies)) / verifies : 0.0;
  }
};

/// The policy: proposer + verifier.
class SpeculativeDecoder : public stage03::DecodePolicy {
 public:
  /// Keeps a reference to the proposer. vocab: the target's; k: proposals per sequence and step
  /// (0 = none); max_running: sequences alive at once (the proposer's memory); rule: the
  /// sampling verifier (tests pass a wrong one to see the distribution test fail).
  /// adaptive: k is the largest; AdaptiveK picks 0..k every step (--spec-k auto).
  SpeculativeDecoder(Proposer& proposer, int vocab, int k, int max_running,
                     AcceptRule rule = accept_rejection_sampling, bool adaptive = false);
  void begin_run(const std::vector<Request>& requests, int longest) override;
  void add_request(std::size_t index, const Request& request) override;
  void before_step(stage03::Scheduler& scheduler) override;
  std::vector<int> choose(int seq, const stage03::Sequence& s, const float* logits, int rows, Sampler& sampler) override;
  void end_sequence(int seq) override;

  const SpeculationStats& stats() const { return stats_; }
  /// The adaptive controller (null unless adaptive).
  const AdaptiveK* adaptive() const { return adaptive_ ? &*adaptive_ : nullptr; }

 private:
  Proposer& proposer_;
  int vocab_, k_, max_running_;
  AcceptRule rule_;
  std::vector<SamplingParams> params_;             ///< per request
  std::vector<std::optional<Sampler>> draws_;      ///< per request: the proposer's own random draws
  std::map<int, std::vector<std::vector<float>>> q_;  ///< per sequence: its proposals' q this step
  std::set<int> live_;                             ///< sequences the proposer holds state for
  /// Hands each proposal to the scheduler (keeping its q); returns how many tokens were proposed.
  int use_proposals(stage03::Scheduler& scheduler, const std::vector<ProposalRequest>& asks,
                    std::vector<Proposal>& got);

  SpeculationStats stats_;
  std::optional<AdaptiveK> adaptive_;
  Timer step_clock_;        ///< started when a step begins proposing
  int pending_batch_ = 0;   ///< the step now running when it is decode-only: its sequences (else 0),
  int pending_k_ = 0;       ///< the k it asked for,
  long emitted_mark_ = 0;   ///< and stats_.emitted when it started
};

}  // namespace llm::stage06
