// acceptance.h: which proposals the target keeps, and the token it adds.
//
// The target has scored the k proposals d_1..d_k in one forward: row i of its logits is its
// distribution p_i for the position after d_i (row 0: after the last verified token).
//
// Greedy (temperature 0): d_{i+1} is kept while it equals argmax p_i; the first row that
// disagrees gives its argmax instead, and if all k agree, row k gives one more. The tokens are
// exactly the target's own greedy tokens.
//
// Sampling (Leviathan et al. 2023; Chen et al. 2023): d_{i+1} was drawn from the draft's q_i
// and is kept with probability min(1, p_i(d)/q_i(d)). On the first rejection the token is drawn
// from the residual norm(max(0, p_i - q_i)) and the step ends; if all k are kept, one more is
// drawn from p_k. Each emitted token is then distributed exactly as p (proof sketch in
// README.md): P(emit x) = min(q(x), p(x)) + (1 - sum_y min(q(y), p(y))) * residual(x) = p(x).
// p and q are both the distributions after temperature/top-k/top-p (Sampler::distribution); a
// deterministic proposer's q is a point mass on its token.
#pragma once

#include <span>
#include <vector>

#include "common/sampler.h"

namespace llm::stage06 {

/// Greedy verification. logits: [proposals.size() + 1, vocab]. Returns the kept proposals then
/// the target's token (1 .. k + 1 tokens).
std::vector<int> accept_greedy(std::span<const int> proposals, const float* logits, int vocab);

/// norm(max(0, p - q)): what to draw from after rejecting a proposal drawn from q. q empty: the
/// point mass on `token`. Returns p itself when p <= q everywhere (cannot happen after a rejection,
/// where p(token) < q(token) leaves mass elsewhere).
std::vector<float> residual_distribution(const std::vector<float>& p, const std::vector<float>& q, int token);

/// How a sampling step decides: proposals, their draft distributions q ([k][vocab], or empty for
/// point masses), the target's logits [k + 1, vocab]; draws from `sampler` (the request's, whose
/// distribution() applies its temperature/top-k/top-p). Returns the kept proposals then one more.
using AcceptRule = std::vector<int> (*)(std::span<const int> proposals, const std::vector<std::vector<float>>& q,
                                        const float* logits, int vocab, Sampler& sampler);

/// Modified rejection sampling: the output distribution is the target's.
std::vector<int> accept_rejection_sampling(std::span<const int> proposals, const std::vector<std::vector<float>>& q,
                                           const float* logits, int vocab, Sampler& sampler);

}  // namespace llm::stage06
