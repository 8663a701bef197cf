// checks.h (tests only): the two things every numeric test does: draw seeded random inputs and
// compare rows of results with a report of the first mismatches.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/harness/compare.h"
#include "kernels/harness/inputs.h"

namespace llm::test {

using harness::randn;

/// CHECKs that got and want agree row by row within rel_tol (see compare_rows), printing the
/// largest error and the first mismatches when they do not.
inline void check_rows(const std::vector<float>& got, const std::vector<float>& want, std::size_t cols, double tol) {
  const auto cmp = harness::compare_rows(got, want, cols, tol);
  INFO("max relative error " << cmp.max_rel << "\n" << cmp.report);
  CHECK(cmp.ok);
}

}  // namespace llm::test
