#include "kernels/harness/compare.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace llm::harness {

Comparison compare_rows(const std::vector<float>& got, const std::vector<float>& want, std::size_t cols,
                        double rel_tol) {
  Comparison c;
  char line[200];
  if (got.size() != want.size() || cols == 0) {
    c.ok = false;
    std::snprintf(line, sizeof(line), "size mismatch: got %zu values, want %zu\n", got.size(), want.size());
    c.report = line;
    return c;
  }
  int shown = 0;
  for (std::size_t r = 0; r * cols < want.size(); ++r) {
    double scale = 0.0, err = 0.0;
    // The scale from the finite reference values only: one inf in `want` would make the row's
    // tolerance infinite and pass anything.
    for (std::size_t i = r * cols; i < (r + 1) * cols; ++i)
      if (std::isfinite(want[i])) scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
    const double tol = rel_tol * std::max(scale, 1e-6);
    for (std::size_t i = r * cols; i < (r + 1) * cols; ++i) {
      const double d = std::fabs(static_cast<double>(got[i]) - static_cast<double>(want[i]));
      // A non-finite reference passes only where `got` is the same infinity; a NaN in `want` (a
      // broken twin) always fails (d > tol is false for NaN, so it has to be said).
      const bool bad = std::isfinite(want[i]) ? !std::isfinite(got[i]) || d > tol
                                              : std::isnan(want[i]) || got[i] != want[i];
      if (std::isfinite(got[i]) && std::isfinite(want[i]))
        err = std::max(err, d);
      else if (bad)
        err = std::numeric_limits<double>::infinity();
      if (bad) {
        c.ok = false;
        if (shown < 10) {
          std::snprintf(line, sizeof(line), "  mismatch at row %zu col %zu (index %zu): got %.9g want %.9g\n", r,
                        i - r * cols, i, static_cast<double>(got[i]), static_cast<double>(want[i]));
          c.report += line;
        } else if (shown == 10) {
          c.report += "  ... (stopping after ten)\n";
        }
        ++shown;
      }
    }
    c.max_rel = std::max(c.max_rel, err / std::max(scale, 1e-6));
  }
  return c;
}

void poison(std::vector<float>& v) {
  std::fill(v.begin(), v.end(), std::numeric_limits<float>::quiet_NaN());
}

}  // namespace llm::harness
