// inputs.h: the harness's random inputs (CPU): seeded normal draws, so that every check can use
// fresh inputs yet a failure can be reproduced from its seed.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace llm::harness {

/// n draws from N(0, scale^2), seeded.
inline std::vector<float> randn(std::size_t n, std::uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace llm::harness
