#include "speculative_decoder.h"

#include <algorithm>
#include <string>

#include "common/error.h"
#include "common/timer.h"

namespace llm::stage06 {

SpeculativeDecoder::SpeculativeDecoder(Proposer& proposer, int vocab, int k, int max_running, AcceptRule rule,
                                       bool adaptive)
    : proposer_(proposer), vocab_(vocab), k_(k), max_running_(max_running), rule_(rule) {
  if (k < 0) throw Error("--spec-k " + std::to_string(k) + ": must be 0 or more");
  if (adaptive) adaptive_.emplace(k);
}

void SpeculativeDecoder::begin_run(const std::vector<Request>& requests, int longest) {
  stats_ = {};
  if (adaptive_) adaptive_.emplace(k_);
  pending_batch_ = 0;
  q_.clear();
  live_.clear();
  params_.clear();
  draws_.clear();
  for (std::size_t i = 0; i < requests.size(); ++i) add_request(i, requests[i]);
  proposer_.begin_run(max_running_, longest);
}

void SpeculativeDecoder::add_request(std::size_t index, const Request& r) {
  if (index != params_.size())
    throw Error("speculative decoder: request " + std::to_string(index) + " arrived after " +
                std::to_string(params_.size()) + " (they are numbered in order)");
  params_.push_back(r.sampling);
  SamplingParams draft = r.sampling;
  draft.seed ^= 0xD1B54A32D192ED03ull;  // the proposer's draws are independent of the verifier's
  draws_.emplace_back(std::in_place, draft);
}

void SpeculativeDecoder::before_step(stage03::Scheduler& scheduler) {
  ++stats_.steps;
  // The step that just ran, if it was decode-only: what its k yielded, proposing included.
  if (adaptive_ && pending_batch_ > 0)
    adaptive_->record_step(pending_batch_, pending_k_, stats_.emitted - emitted_mark_, step_clock_.seconds());
  pending_batch_ = 0;
  step_clock_ = Timer();
  emitted_mark_ = stats_.emitted;
  Timer timer;
  q_.clear();
  // A preempted sequence loses its draft state with its blocks; it is rebuilt when it runs again.
  const std::vector<int>& running = scheduler.running();
  for (auto it = live_.begin(); it != live_.end();) {
    if (std::find(running.begin(), running.end(), *it) == running.end()) {
      proposer_.forget(*it);
      it = live_.erase(it);
    } else {
      ++it;
    }
  }
  int decoding = 0;
  for (int id : running) {
    const stage03::Sequence& s = scheduler.sequence(id);
    decoding += s.computed + 1 == static_cast<int>(s.tokens.size());
  }
  // A decode-only step: no prompt chunk and no admission can join it.
  const bool decode_only = decoding > 0 && decoding == static_cast<int>(running.size()) &&
                           (scheduler.waiting().empty() ||
                            static_cast<int>(running.size()) >= scheduler.config().max_running);
  const int step_k = adaptive_ ? adaptive_->choose(decoding) : k_;
  stats_.k_sum += step_k;
  std::vector<ProposalRequest> asks;
  for (int id : running) {
    if (step_k == 0) break;
    const stage03::Sequence& s = scheduler.sequence(id);
    if (s.computed + 1 != static_cast<int>(s.tokens.size())) continue;  // still in prefill
    // Never past max_new_tokens: the step emits the kept proposals plus one.
    const long room = static_cast<long>(s.prompt_len) + s.max_new_tokens - static_cast<long>(s.tokens.size()) - 1;
    const int k = static_cast<int>(std::min<long>(step_k, room));
    if (k < 1) continue;
    const SamplingParams& p = params_[s.index];
    asks.push_back(ProposalRequest{id, s.tokens, k, p.temperature > 0.0f ? &*draws_[s.index] : nullptr});
    live_.insert(id);
  }
  if (!asks.empty()) {
    std::vector<Proposal> got = proposer_.propose(asks);
    use_proposals(scheduler, asks, got);
  }
  stats_.draft_seconds += timer.seconds();
  if (adaptive_ && decode_only) {
    pending_batch_ = decoding;
    pending_k_ = step_k;
  }
}

int SpeculativeDecoder::use_proposals(stage03::Scheduler& scheduler, const std::vector<ProposalRequest>& asks,
                                      std::vector<Proposal>& got) {
  int proposals = 0;
  for (std::size_t i = 0; i < asks.size(); ++i) {
    Proposal& g = got[i];
    if (g.tokens.empty()) continue;
    if (static_cast<int>(g.tokens.size()) > asks[i].k || (!g.q.empty() && g.q.size() != g.tokens.size()))
      throw Error("proposer: returned " + std::to_string(g.tokens.size()) + " tokens for k = " +
                  std::to_string(asks[i].k));
    scheduler.propose(asks[i].seq, g.tokens);
    proposals += static_cast<int>(g.tokens.size());
    q_[asks[i].seq] = std::move(g.q);
  }
  return proposals;
}

std::vector<int> SpeculativeDecoder::choose(int seq, const stage03::Sequence& s, const float* logits, int rows,
                                            Sampler& sampler) {
  // Only rows that were finite verify: proposal i needs row i, and one row more gives the last token.
  const int considered = std::min(s.proposed, rows - 1);
  const std::span<const int> proposals(s.tokens.data() + (s.tokens.size() - static_cast<std::size_t>(s.proposed)),
                                       static_cast<std::size_t>(considered));
  std::vector<std::vector<float>> q;
  if (const auto it = q_.find(seq); it != q_.end()) {
    q = std::move(it->second);
    q_.erase(it);
    q.resize(std::min(q.size(), static_cast<std::size_t>(considered)));
  }
  std::vector<int> out = params_[s.index].temperature > 0.0f ? rule_(proposals, q, logits, vocab_, sampler)
                                                             : accept_greedy(proposals, logits, vocab_);
  ++stats_.sequence_steps;
  stats_.emitted += static_cast<long>(out.size());
  if (s.proposed > 0) {
    ++stats_.verifies;
    stats_.proposed += s.proposed;
    stats_.accepted += static_cast<long>(out.size()) - 1;
  }
  return out;
}

void SpeculativeDecoder::end_sequence(int seq) {
  proposer_.forget(seq);
  live_.erase(seq);
  q_.erase(seq);
}

}  // namespace llm::stage06
