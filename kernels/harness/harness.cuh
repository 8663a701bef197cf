// harness.cuh: the GPU side of the kernel harness (llm.c's dev/cuda style), shared by every
// kernel family in kernels/harness/families/:
//
//   check:  fresh seeded random inputs at real and awkward shapes, the output buffer poisoned
//           (all bits set: NaN in fp32 and fp16) before every launch, the result compared with
//           the CPU twin by compare_rows (NaN/Inf fail; the first ten mismatches are printed)
//           at a tolerance stated per dtype (kTolFp32, kTolFp16).
//   bench:  a timing row per version and size: the median of many launches after warm-up, the
//           L2 cache flushed before each (time_launch), or for kernels of a few microseconds
//           the median per-launch time of batches of back-to-back launches on rotated copies of
//           the inputs (time_batched), as TFLOP/s or GB/s and as a share of the ceilings (copy
//           bandwidth, cuBLAS fp16 GEMM) measured on the same card in the same run.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/device_buffer.cuh"
#include "kernels/harness/compare.h"
#include "kernels/harness/inputs.h"

namespace llm::harness {

/// Relative tolerances (per row, against the row's largest reference value; see compare_rows).
/// fp32 kernels against fp32 twins differ only in summation order. fp16 kernels round their
/// output (2^-11 relative) and, on tensor cores, the probabilities P before PV.
inline constexpr double kTolFp32 = 1e-4;
inline constexpr double kTolFp16 = 1e-2;

/// Device allocations: kernels/cuda/device_buffer.cuh.
using cuda::DeviceBuffer;

/// Uploads floats as fp32.
DeviceBuffer<float> upload(const std::vector<float>& v);
/// Uploads ints.
DeviceBuffer<int> upload(const std::vector<int>& v);
/// Uploads floats rounded to fp16. Round the host copy first (cpu::round_to_half) so that the
/// twin sees the same values.
DeviceBuffer<__half> upload_half(const std::vector<float>& v);
/// Fills device fp16 memory with deterministic pseudo-random values in [-scale, scale) (a
/// splitmix64 hash of index and seed), on the device: for bench inputs of gigabytes, too large
/// to draw and upload from the host. Never time on zeros.
void fill_random(DeviceBuffer<__half>& buf, std::uint64_t seed, float scale = 1.0f);
/// Downloads to the host (synchronises).
std::vector<float> download(const DeviceBuffer<float>& d);
std::vector<float> download(const DeviceBuffer<__half>& d);
std::vector<int> download(const DeviceBuffer<int>& d);

/// Compares and prints one line ("ok"/"FAIL", max relative error) plus the first mismatches.
/// Returns true when it passed.
bool check_close(const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
                 std::size_t cols, double tol);

/// Median and minimum time of a launch, in milliseconds.
struct Timing {
  double median_ms = 0.0;
  double min_ms = 0.0;
  int repeats = 0;
};

/// Times `launch(stream)` with CUDA events: `warmup` untimed launches, then `repeats` timed ones,
/// each preceded by a read of a buffer twice the L2 size (so every launch starts from cold
/// caches, as a layer in a real forward pass does; a read, not a memset, so that no dirty line is
/// left for the timed kernel to write back). Returns the median. Each time includes the event
/// and launch overhead of an isolated launch (a few microseconds): for kernels that short, use
/// time_batched.
Timing time_launch(const std::function<void(cudaStream_t)>& launch, int repeats = 50, int warmup = 5);

/// The device's L2 cache size in bytes.
std::size_t l2_bytes();
/// How many copies of an input of `bytes_per_copy` bytes a rotation needs so that a copy is
/// evicted from L2 before its next use: at least 2, and at least twice the L2 of other copies
/// read in between.
int rotation_copies(std::size_t bytes_per_copy);
/// The pool size rotation_pool_copies keeps to where it can: 224 MiB (two copies of the
/// Llama-3-8B gate/up projection, 14336 x 4096 fp16: 112 MiB each).
inline constexpr std::size_t kRotationPoolBytes = std::size_t{224} << 20;
/// How many copies of `bytes_per_copy` a rotation pool holds: 1 when one copy is at least twice
/// the L2 (between two reads of any of its lines, launch after launch, the rest of the copy is
/// read: two L2s; no rotation needed); else rotation_copies when they fit in `max_pool_bytes`; else
/// as many as fit, at least 2 (fewer than rotation_copies: less than two L2s of other copies
/// between two uses of one; with a 50 MiB L2 and the default cap only for copies of 75-100 MiB,
/// each then followed by one other copy of more than 1.5 L2s).
int rotation_pool_copies(std::size_t bytes_per_copy, std::size_t max_pool_bytes = kRotationPoolBytes);

/// Times a kernel as a layer of a decode step meets it: back to back with other work, its
/// weights cold. `launch(stream, i)` is called with i = 0, 1, 2, ... over the whole call; the
/// caller makes launch i read copy i % copies of its inputs (rotation_copies), so that every
/// launch reads inputs evicted from L2 since their last use. `warmup` untimed launches, then
/// `repeats` batches of `batch` launches between one pair of events, each batch queued whole
/// behind a spinning kernel before it starts (so the host's launch rate does not show). Returns
/// the median and minimum of the batches' per-launch times (batch time / batch).
Timing time_batched(const std::function<void(cudaStream_t, long)>& launch, int repeats = 20, int batch = 32,
                    int warmup = 8);

/// The two ceilings every figure is reported against, measured once per process on device 0.
struct Ceilings {
  std::string device;
  double copy_gbps = 0.0;    ///< device-to-device cudaMemcpy: (read + written bytes) / time
  double gemm_tflops = 0.0;  ///< cuBLAS fp16 GEMM, fp32 accumulation, 8192^3
};
const Ceilings& ceilings();

/// One timing row. `value` is in `unit` ("TFLOP/s" or "GB/s"); `ceiling_pct` its share of the
/// matching ceiling; `baseline` names another row's value to compare with, when there is one.
struct Row {
  std::string family;
  std::string version;
  std::string shape;
  double ms = 0.0;
  double value = 0.0;
  std::string unit;
  double ceiling_pct = 0.0;
};
/// Prints the row and, when set_json_output() named a file, appends it as one JSON line.
void report(const Row& r);
void set_json_output(const std::string& path);

/// Builds a row from a timing and a work amount: flops (for TFLOP/s) or bytes (for GB/s).
Row row_tflops(const std::string& family, const std::string& version, const std::string& shape, const Timing& t,
               double flops);
Row row_gbps(const std::string& family, const std::string& version, const std::string& shape, const Timing& t,
             double bytes);

/// What the command line asked a family for.
struct FamilyOptions {
  int version = 0;        ///< 0: every version
  bool quick = false;     ///< fewer and smaller shapes (what ctest runs)
  std::uint64_t seed = 1; ///< base seed of the random inputs
};

}  // namespace llm::harness
