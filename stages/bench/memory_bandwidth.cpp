#include "memory_bandwidth.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <vector>

#include "common/timer.h"
#include "kernels/cpu/parallel.h"

namespace llm::bench {

namespace {

// Independent partial sums per thread. With one accumulator the loop is bound by the latency of
// a chain of vector adds (one add every few cycles), not by memory: on one thread that read at
// about half of what a matrix-vector product achieves, and decode then showed "more than 100%
// of the read bandwidth" for weights that cannot fit in any cache.
constexpr std::ptrdiff_t kLanes = 64;

// The same threads as the stages (kernels/cpu/parallel.h), in chunks of 1 MiB.
constexpr std::ptrdiff_t kChunk = (1 << 20) / sizeof(float);

float sum_all(const float* a, std::ptrdiff_t n) {
  std::mutex m;
  float total = 0.0f;
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
  cpu::parallel_for(chunks, 1, [&](std::int64_t c0, std::int64_t c1) {
    float acc[kLanes] = {};
    const std::ptrdiff_t end = std::min<std::ptrdiff_t>(n, c1 * kChunk) / kLanes * kLanes;
    for (std::ptrdiff_t i = c0 * kChunk; i < end; i += kLanes)
      for (std::ptrdiff_t k = 0; k < kLanes; ++k) acc[k] += a[i + k];
    float s = 0.0f;
    for (float x : acc) s += x;
    std::lock_guard<std::mutex> lk(m);
    total += s;
  });
  for (std::ptrdiff_t i = n / kLanes * kLanes; i < n; ++i) total += a[i];
  return total;
}

// dst = src, chunked over the threads.
void copy_all(float* dst, const float* src, std::ptrdiff_t n) {
  cpu::parallel_for((n + kChunk - 1) / kChunk, 1, [&](std::int64_t c0, std::int64_t c1) {
    const std::ptrdiff_t begin = c0 * kChunk, end = std::min<std::ptrdiff_t>(n, c1 * kChunk);
    std::memcpy(dst + begin, src + begin, static_cast<std::size_t>(end - begin) * sizeof(float));
  });
}

}  // namespace

Bandwidth measure_bandwidth(double mib, int repeats) {
  const auto n = static_cast<std::ptrdiff_t>(mib * (1 << 20) / sizeof(float));
  std::vector<float> a(static_cast<std::size_t>(n)), b(static_cast<std::size_t>(n));
  // First touch from the threads that will read, so pages sit near them.
  cpu::parallel_for((n + kChunk - 1) / kChunk, 1, [&](std::int64_t c0, std::int64_t c1) {
    for (std::ptrdiff_t i = c0 * kChunk; i < std::min<std::ptrdiff_t>(n, c1 * kChunk); ++i) {
      a[static_cast<std::size_t>(i)] = 1.0f;
      b[static_cast<std::size_t>(i)] = 0.0f;
    }
  });
  Bandwidth bw;
  bw.buffer_mib = mib;
  bw.threads = cpu::thread_count();
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
    copy_all(pb, pa, n);
    bw.copy_gbps = std::max(bw.copy_gbps, 2.0 * bytes / t.seconds() / 1e9);
    sink = sink + pb[n / 2];
  }
  return bw;
}

}  // namespace llm::bench
