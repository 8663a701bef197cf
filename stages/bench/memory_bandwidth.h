// memory_bandwidth.h: this machine's memory bandwidth, measured the STREAM way, so that a decode
// step's bytes per second can be placed against the ceiling of the machine it ran on.
#pragma once

namespace llm::bench {

/// Best-of-N bandwidths in GB/s (1e9 bytes/s) over a buffer much larger than the caches.
struct Bandwidth {
  double read_gbps = 0.0;  ///< sum of a float array, all threads: bytes read / s
  double copy_gbps = 0.0;  ///< a[i] = b[i], all threads: (bytes read + bytes written) / s
  double buffer_mib = 0.0;
  int threads = 0;  ///< threads that read (the stages' thread count, kernels/cpu/parallel.h)
};

/// Measures with a buffer of `mib` MiB (per array), `repeats` times, keeping the best.
Bandwidth measure_bandwidth(double mib = 512.0, int repeats = 5);

}  // namespace llm::bench
