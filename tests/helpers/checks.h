// checks.h (tests only): the two things every numeric test does: draw seeded random inputs and
// compare rows of results with a report of the first mismatches.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <vector>

#include "tests/helpers/compare.h"

namespace llm::test {

/// n draws from N(0, scale^2), seeded.
inline std::vector<float> randn(std::size_t n, std::uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

/// CHECKs that got and want agree row by row within rel_tol (see compare_rows), printing the
/// largest error and the first mismatches when they do not.
inline void check_rows(const std::vector<float>& got, const std::vector<float>& want, std::size_t cols, double tol) {
  const auto cmp = compare_rows(got, want, cols, tol);
  INFO("max relative error " << cmp.max_rel << "\n" << cmp.report);
  CHECK(cmp.ok);
}

}  // namespace llm::test
