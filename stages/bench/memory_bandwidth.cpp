#include "memory_bandwidth.h"

#include <algorithm>
#include <cstddef>
#include <vector>

#include "common/timer.h"

namespace llm::bench {

Bandwidth measure_bandwidth(double mib, int repeats) {
  const auto n = static_cast<std::ptrdiff_t>(mib * (1 << 20) / sizeof(float));
  std::vector<float> a(static_cast<std::size_t>(n)), b(static_cast<std::size_t>(n));
  // First touch from the threads that will read, so pages sit near them.
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    a[static_cast<std::size_t>(i)] = 1.0f;
    b[static_cast<std::size_t>(i)] = 0.0f;
  }
  Bandwidth bw;
  bw.buffer_mib = mib;
  const double bytes = static_cast<double>(n) * sizeof(float);
  volatile float sink = 0.0f;
  for (int r = 0; r < repeats; ++r) {
    Timer t;
    float sum = 0.0f;
    const float* pa = a.data();
#pragma omp parallel for simd reduction(+ : sum) schedule(static)
    for (std::ptrdiff_t i = 0; i < n; ++i) sum += pa[i];
    bw.read_gbps = std::max(bw.read_gbps, bytes / t.seconds() / 1e9);
    sink = sink + sum;

    t.reset();
    float* pb = b.data();
#pragma omp parallel for simd schedule(static)
    for (std::ptrdiff_t i = 0; i < n; ++i) pb[i] = pa[i];
    bw.copy_gbps = std::max(bw.copy_gbps, 2.0 * bytes / t.seconds() / 1e9);
    sink = sink + pb[n / 2];
  }
  return bw;
}

}  // namespace llm::bench
