// compare.h: the kernel harness's comparison (CPU), used by every numeric test and by kernel_harness:
// comparing float arrays the way docs/ARCHITECTURE.md ("Correctness") says: fail on NaN/Inf,
// measure the error per row relative to the row's largest reference value, and print the
// first mismatches (index, got, want), stopping after ten.
#pragma once

#include <string>
#include <vector>

namespace llm::harness {

/// Result of comparing `got` with `want` as rows of `cols` values.
struct Comparison {
  bool ok = true;
  double max_rel = 0.0;  ///< max over rows of max|got - want| / max|want|
  std::string report;    ///< the first mismatches, for the test log
};

/// Compares row by row; a row fails when max|got-want| > rel_tol * max(|want|) (plus a tiny
/// absolute floor for all-zero rows; the max over the finite values of `want`). Any NaN/Inf in
/// `got` fails unless `want` holds the same infinity there; any NaN in `want` fails.
Comparison compare_rows(const std::vector<float>& got, const std::vector<float>& want, std::size_t cols,
                        double rel_tol);

/// Fills `v` with a NaN pattern so that a kernel that forgets to write an element is caught.
void poison(std::vector<float>& v);

}  // namespace llm::harness
