// sampler.h: choosing the next token from a row of logits: greedy, temperature, top-k, top-p.
//
// The random numbers come from our own xorshift generator, so the same seed gives the same
// text on every platform and standard library.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/engine.h"

namespace llm {

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  /// The next token id for logits[0..vocab). Greedy when temperature is 0.
  int sample(const float* logits, int vocab);
  /// The probabilities sample() draws from (after temperature, top-k and top-p), for tests.
  std::vector<float> distribution(const float* logits, int vocab) const;
  /// Uniform in [0, 1), 24 random bits.
  float next_uniform();
  /// The token sample() returns for the draw u from the distribution p: walks token ids in
  /// order, accumulating p in float, and stops at the first id whose running sum exceeds u.
  /// The device sampler (kernels/cuda/sampling.cuh) follows this exactly; it is its CPU twin.
  static int pick(const std::vector<float>& p, float u);

 private:
  SamplingParams params_;
  std::uint64_t state_;
};

/// "" when logits[0..vocab) are all finite; else why the request must end instead of sampling:
/// "step <step> produced non-finite logits (NaN at vocab index 17)". A NaN or an Inf compares
/// false or wins every max, so sampling from it would emit a meaningless token (greedy: token 0
/// for ever). `step` counts the tokens generated before this one.
std::string non_finite_logits(const float* logits, int vocab, std::size_t step);

}  // namespace llm
