#include "memory_bandwidth.h"

#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <vector>

#include "common/timer.h"

namespace llm::bench {

namespace {

// Independent partial sums per thread. With one accumulator the loop is bound by the latency of
// a chain of vector adds (one add every few cycles), not by memory: on one thread that read at
// about half of what a matrix-vector product achieves, and decode then showed "more than 100%
// of the read bandwidth" for weights that cannot fit in any cache.
constexpr std::ptrdiff_t kLanes = 64;

float sum_all(const float* a, std::ptrdiff_t n) {
  float total = 0.0f;
#pragma omp parallel reduction(+ : total)
  {
    float acc[kLanes] = {};
#pragma omp for schedule(static)
    for (std::ptrdiff_t block = 0; block < n / kLanes; ++block) {
#pragma omp simd
      for (std::ptrdiff_t k = 0; k < kLanes; ++k) acc[k] += a[block * kLanes + k];
    }
    for (float x : acc) total += x;
  }
  for (std::ptrdiff_t i = n / kLanes * kLanes; i < n; ++i) total += a[i];
  return total;
}

}  // namespace

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
  bw.threads = omp_get_max_threads();
  const double bytes = static_cast<double>(n) * sizeof(float);
  volatile float sink = 0.0f;
  for (int r = 0; r < repeats; ++r) {
    Timer t;
    const float* pa = a.data();
    const float sum = sum_all(pa, n);
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
