#include "acceptance.h"

#include <algorithm>
#include <numeric>

namespace llm::stage06 {

std::vector<int> accept_greedy(std::span<const int> proposals, const float* logits, int vocab) {
  std::vector<int> out;
  for (std::size_t i = 0; i <= proposals.size(); ++i) {
    const float* row = logits + i * static_cast<std::size_t>(vocab);
    const int best = static_cast<int>(std::max_element(row, row + vocab) - row);
    out.push_back(best);
    if (i == proposals.size() || proposals[i] != best) break;
  }
  return out;
}

std::vector<float> residual_distribution(const std::vector<float>& p, const std::vector<float>& q, int token) {
  std::vector<float> r(p.size());
  // BEGIN EXERCISE(residual): r = max(0, p - q) (q a point mass on token when empty), normalised; p if nothing is left
  double sum = 0.0;
  for (std::size_t x = 0; x < p.size(); ++x) {
    const float qx = q.empty() ? (static_cast<int>(x) == token ? 1.0f : 0.0f) : q[x];
    r[x] = std::max(0.0f, p[x] - qx);
    sum += r[x];
  }
  if (sum <= 0.0) return p;
  for (float& v : r) v = static_cast<float>(v / sum);
  // END EXERCISE
  return r;
}

std::vector<int> accept_rejection_sampling(std::span<const int> proposals, const std::vector<std::vector<float>>& q,
                                           const float* logits, int vocab, Sampler& sampler) {
  std::vector<int> out;
  for (std::size_t i = 0; i < proposals.size(); ++i) {
    const std::vector<float> p = sampler.distribution(logits + i * static_cast<std::size_t>(vocab), vocab);
    const int d = proposals[i];
    const auto x = static_cast<std::size_t>(d);
    const float qd = q.empty() ? 1.0f : q[i][x];
    // BEGIN EXERCISE(accept-reject): keep d with probability min(1, p(d)/q(d)); else draw from the residual and stop
    const float u = sampler.next_uniform();
    if (u * qd < p[x]) {
      out.push_back(d);
      continue;
    }
    out.push_back(Sampler::pick(residual_distribution(p, q.empty() ? std::vector<float>{} : q[i], d),
                                sampler.next_uniform()));
    return out;
    // END EXERCISE
  }
  const float* last = logits + proposals.size() * static_cast<std::size_t>(vocab);
  out.push_back(Sampler::pick(sampler.distribution(last, vocab), sampler.next_uniform()));
  return out;
}

}  // namespace llm::stage06
