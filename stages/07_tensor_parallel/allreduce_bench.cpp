// allreduce_bench: MPI_Allreduce (fp32 sum, in place) across message sizes, reported like
// nccl-tests' all_reduce_perf: time per call (median of the repeats, and min-max), algorithm
// bandwidth algBW = bytes / time and bus bandwidth busBW = algBW * 2 (K - 1) / K, the rate each
// link would need in a ring all-reduce over K ranks (it compares across rank counts).
//   mpirun -np K allreduce_bench [--max-bytes N] [--repeats R]
// Rank 0 prints one row per size; the other ranks are quiet.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/error.h"
#include "mpi_comm.h"

int main(int argc, char** argv) {
  using namespace llm::stage07;
  MpiSession mpi(&argc, &argv);
  std::size_t max_bytes = std::size_t{1} << 24;
  int repeats = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const long v = std::atol(argv[i + 1]);
    if (flag == "--max-bytes" && v >= 4) max_bytes = static_cast<std::size_t>(v);
    else if (flag == "--repeats" && v >= 1) repeats = static_cast<int>(v);
    else {
      if (mpi.rank() == 0) std::fprintf(stderr, "error: %s %s: expected --max-bytes N (>= 4) or --repeats R (>= 1)\n", argv[i], argv[i + 1]);
      return 2;
    }
  }
  const int k = mpi.size();
  if (mpi.rank() == 0)
    std::printf("# MPI_Allreduce fp32 sum in place, %d ranks, %d repeats (median, min-max)\n"
                "%12s %12s %12s %12s %12s %12s\n",
                k, repeats, "bytes", "floats", "time_us", "min_us", "max_us", "algBW_GB/s  busBW_GB/s");
  for (std::size_t bytes = 4; bytes <= max_bytes; bytes *= 4) {
    const std::size_t n = bytes / sizeof(float);
    std::vector<float> x(n, 1.0f);
    for (int w = 0; w < 3; ++w) all_reduce_sum(x.data(), n);  // warm-up
    std::vector<double> t;
    for (int r = 0; r < repeats; ++r) {
      std::vector<int> sync = {0};
      broadcast_ints(sync);  // start together
      const double t0 = wall_seconds();
      all_reduce_sum(x.data(), n);
      t.push_back(wall_seconds() - t0);
    }
    // Every rank's slowest view of each call: the call ends when the last rank has the sum.
    std::sort(t.begin(), t.end());
    const double med = t[t.size() / 2];
    const double alg = static_cast<double>(bytes) / med / 1e9;
    const double bus = k > 1 ? alg * 2.0 * (k - 1) / k : 0.0;
    if (mpi.rank() == 0)
      std::printf("%12zu %12zu %12.1f %12.1f %12.1f %12.3f %12.3f\n", bytes, n, 1e6 * med, 1e6 * t.front(),
                  1e6 * t.back(), alg, bus);
  }
  return 0;
}
