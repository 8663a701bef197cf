#include "common/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/ops.h"

namespace llm {

Sampler::Sampler(const SamplingParams& params) : params_(params) {
  // splitmix64 of the seed, so that seeds 0, 1, 2 ... start far apart (and never at 0).
  std::uint64_t z = params.seed + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  state_ = (z ^ (z >> 31)) | 1u;
}

float Sampler::next_uniform() {
  state_ ^= state_ >> 12;  // xorshift64*
  state_ ^= state_ << 25;
  state_ ^= state_ >> 27;
  const std::uint64_t r = state_ * 0x2545F4914F6CDD1Dull;
  return static_cast<float>(r >> 40) / 16777216.0f;
}

std::vector<float> Sampler::distribution(const float* logits, int vocab) const {
  std::vector<float> p(static_cast<std::size_t>(vocab), 0.0f);
  if (params_.temperature <= 0.0f) {
    p[static_cast<std::size_t>(std::max_element(logits, logits + vocab) - logits)] = 1.0f;
    return p;
  }
  // Candidates sorted by logit, highest first (stable: ties keep the lower id first).
  std::vector<int> order(static_cast<std::size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  std::size_t keep = order.size();
  if (params_.top_k > 0) keep = std::min(keep, static_cast<std::size_t>(params_.top_k));

  std::vector<double> w(keep);
  const double top = logits[order[0]];
  double sum = 0.0;
  for (std::size_t i = 0; i < keep; ++i) {
    w[i] = std::exp((logits[order[i]] - top) / params_.temperature);
    sum += w[i];
  }
  if (params_.top_p < 1.0f) {
    // Smallest prefix whose mass reaches top_p (always at least one token).
    double mass = 0.0;
    std::size_t cut = 0;
    while (cut < keep) {
      mass += w[cut] / sum;
      ++cut;
      if (mass >= params_.top_p) break;
    }
    keep = cut;
    sum = std::accumulate(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(keep), 0.0);
  }
  for (std::size_t i = 0; i < keep; ++i) p[static_cast<std::size_t>(order[i])] = static_cast<float>(w[i] / sum);
  return p;
}

int Sampler::sample(const float* logits, int vocab) {
  if (params_.temperature <= 0.0f) return cpu::argmax(logits, vocab);
  const std::vector<float> p = distribution(logits, vocab);
  return pick(p, next_uniform());
}

std::string non_finite_logits(const float* logits, int vocab, std::size_t step) {
  // cpu::first_non_finite vectorises the scan (a loop that stops at the first one does not): it
  // runs on every row of logits of every step.
  const std::size_t first = cpu::first_non_finite(logits, static_cast<std::size_t>(std::max(vocab, 0)));
  for (auto i = static_cast<int>(first); i < vocab; ++i) {
    const float x = logits[i];
    if (std::isfinite(x)) continue;
    const char* what = std::isnan(x) ? "NaN" : x > 0 ? "+Inf" : "-Inf";
    return "step " + std::to_string(step) + " produced non-finite logits (" + what + " at vocab index " +
           std::to_string(i) + ")";
  }
  return "";
}

int Sampler::pick(const std::vector<float>& p, float u) {
  float cdf = 0.0f;
  int last = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0.0f) continue;
    cdf += p[i];
    last = static_cast<int>(i);
    if (u < cdf) return last;
  }
  return last;  // rounding left u just above the total
}

}  // namespace llm
