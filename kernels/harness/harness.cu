#include "kernels/harness/harness.cuh"

#include <cublas_v2.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <utility>

#include "kernels/cpu/half.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/random_fill.cuh"

namespace llm::harness {

namespace {

/// Reads `n` 16-byte words (the L2 flush): every line it leaves in L2 is clean. A memset leaves
/// up to an L2 of dirty lines, written back to DRAM while the next (timed) kernel evicts them,
/// so a kernel that reads B bytes would move up to 2B through DRAM inside its timing.
__global__ void read_flush_kernel(const uint4* __restrict__ p, std::size_t n, unsigned* sink) {
  unsigned acc = 0;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const uint4 v = __ldcg(p + i);  // cached in L2 (where it is meant to evict), not in L1
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9E3779B9u) *sink = acc;  // a use of every load that (almost) never stores
}

/// Spins one thread for `ns` nanoseconds: the stream is held while the host queues a batch.
__global__ void spin_kernel(unsigned long long ns) {
  unsigned long long t0, t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  } while (t - t0 < ns);
}

/// The flush buffer (twice the L2, contents set once) and its sink.
struct Flush {
  DeviceBuffer<uint4> buf;
  DeviceBuffer<unsigned> sink{1};
  explicit Flush(std::size_t bytes) : buf(bytes / sizeof(uint4)) {
    CUDA_CHECK(cudaMemset(buf.get(), 0x5A, buf.bytes()));
    CUDA_CHECK(cudaDeviceSynchronize());
  }
  void run(cudaStream_t s) {
    read_flush_kernel<<<1024, 256, 0, s>>>(buf.get(), buf.size(), sink.get());
    CUDA_CHECK(cudaGetLastError());
  }
};

Flush& flush() {
  static Flush f(2 * l2_bytes());
  return f;
}

template <class T>
DeviceBuffer<T> upload_raw(const std::vector<T>& v) {
  DeviceBuffer<T> d(v.size());
  if (!v.empty()) CUDA_CHECK(cudaMemcpy(d.get(), v.data(), d.bytes(), cudaMemcpyHostToDevice));
  return d;
}

template <class T>
std::vector<T> download_raw(const DeviceBuffer<T>& d) {
  std::vector<T> v(d.size());
  CUDA_CHECK(cudaDeviceSynchronize());
  if (!v.empty()) CUDA_CHECK(cudaMemcpy(v.data(), d.get(), d.bytes(), cudaMemcpyDeviceToHost));
  return v;
}

std::string g_json_path;

/// The ceiling the unit is measured against.
double ceiling_for(const std::string& unit) {
  return unit == "GB/s" ? ceilings().copy_gbps : ceilings().gemm_tflops;
}

Ceilings measure_ceilings() {
  Ceilings c;
  c.device = cuda::device_name();
  // Copy bandwidth: a 1 GiB device-to-device copy reads and writes 1 GiB each.
  {
    const std::size_t bytes = std::size_t{1} << 30;
    DeviceBuffer<char> a(bytes), b(bytes);
    CUDA_CHECK(cudaMemset(a.get(), 1, bytes));
    const Timing t = time_launch(
        [&](cudaStream_t s) { CUDA_CHECK(cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice, s)); }, 20, 3);
    c.copy_gbps = 2.0 * static_cast<double>(bytes) / (t.median_ms * 1e-3) / 1e9;
  }
  // GEMM: cuBLAS fp16 x fp16 -> fp32 accumulation, 8192^3 (the shape of a large prefill).
  {
    const int n = 8192;
    DeviceBuffer<__half> a(static_cast<std::size_t>(n) * n), b(static_cast<std::size_t>(n) * n);
    DeviceBuffer<__half> c16(static_cast<std::size_t>(n) * n);
    CUDA_CHECK(cudaMemset(a.get(), 0x3C, a.bytes()));  // 0x3C3C: about 1.06 in fp16; never time zeros
    CUDA_CHECK(cudaMemset(b.get(), 0x2C, b.bytes()));  // 0x2C2C: about 0.06
    cublasHandle_t handle;
    if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) throw std::runtime_error("cublasCreate failed");
    const float alpha = 1.0f, beta = 0.0f;
    const Timing t = time_launch(
        [&](cudaStream_t s) {
          cublasSetStream(handle, s);
          const cublasStatus_t st =
              cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, a.get(), CUDA_R_16F, n, b.get(), CUDA_R_16F,
                           n, &beta, c16.get(), CUDA_R_16F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
          if (st != CUBLAS_STATUS_SUCCESS) throw std::runtime_error("cublasGemmEx failed in the ceiling GEMM");
        },
        20, 3);
    cublasDestroy(handle);
    c.gemm_tflops = 2.0 * n * static_cast<double>(n) * n / (t.median_ms * 1e-3) / 1e12;
  }
  std::printf("ceilings on %s: copy %.0f GB/s, cuBLAS fp16 GEMM 8192^3 %.0f TFLOP/s\n", c.device.c_str(), c.copy_gbps,
              c.gemm_tflops);
  return c;
}

}  // namespace

DeviceBuffer<float> upload(const std::vector<float>& v) { return upload_raw(v); }
DeviceBuffer<int> upload(const std::vector<int>& v) { return upload_raw(v); }

DeviceBuffer<__half> upload_half(const std::vector<float>& v) {
  const std::vector<std::uint16_t> bits = cpu::to_half_bits(v);
  DeviceBuffer<__half> d(v.size());
  if (!v.empty()) CUDA_CHECK(cudaMemcpy(d.get(), bits.data(), d.bytes(), cudaMemcpyHostToDevice));
  return d;
}

void fill_random(DeviceBuffer<__half>& buf, std::uint64_t seed, float scale) {
  if (buf.size() == 0) return;
  cuda::fill_uniform_half(buf.get(), buf.size(), seed, scale);
}

std::vector<float> download(const DeviceBuffer<float>& d) { return download_raw(d); }
std::vector<int> download(const DeviceBuffer<int>& d) { return download_raw(d); }

std::vector<float> download(const DeviceBuffer<__half>& d) {
  std::vector<std::uint16_t> bits(d.size());
  CUDA_CHECK(cudaDeviceSynchronize());
  if (!bits.empty()) CUDA_CHECK(cudaMemcpy(bits.data(), d.get(), d.bytes(), cudaMemcpyDeviceToHost));
  return cpu::from_half_bits(bits);
}

bool check_close(const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
                 std::size_t cols, double tol) {
  const Comparison c = compare_rows(got, want, cols, tol);
  std::printf("  %-4s %-60s max rel err %.3g (tol %.0e)\n", c.ok ? "ok" : "FAIL", what.c_str(), c.max_rel, tol);
  if (!c.ok) std::printf("%s", c.report.c_str());
  std::fflush(stdout);
  return c.ok;
}

std::size_t l2_bytes() {
  static const std::size_t bytes = [] {
    int dev = 0, l2 = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
    return static_cast<std::size_t>(std::max(l2, 1 << 20));
  }();
  return bytes;
}

int rotation_copies(std::size_t bytes_per_copy) {
  const std::size_t b = std::max<std::size_t>(bytes_per_copy, 1);
  return static_cast<int>(std::max<std::size_t>(2, (2 * l2_bytes() + b - 1) / b + 1));
}

int rotation_pool_copies(std::size_t bytes_per_copy, std::size_t max_pool_bytes) {
  const std::size_t b = std::max<std::size_t>(bytes_per_copy, 1);
  if (b >= 2 * l2_bytes()) return 1;
  const int copies = rotation_copies(b);
  if (static_cast<std::size_t>(copies) * b <= max_pool_bytes) return copies;
  return static_cast<int>(std::max<std::size_t>(2, max_pool_bytes / b));
}

namespace {

/// A timing run's stream and event pair, made at the start and released at the end.
struct TimedStream {
  cudaStream_t s = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  TimedStream() {
    CUDA_CHECK(cudaStreamCreate(&s));
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
  }
  TimedStream(const TimedStream&) = delete;
  TimedStream& operator=(const TimedStream&) = delete;
  ~TimedStream() {  // an error here is a broken context, which the run's own checks report
    (void)cudaEventDestroy(start);
    (void)cudaEventDestroy(stop);
    (void)cudaStreamDestroy(s);
  }
  /// Milliseconds between the two events, once `stop` has completed.
  float elapsed_ms() const {
    CUDA_CHECK(cudaEventSynchronize(stop));
    float t = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
    return t;
  }
};

/// The median and minimum of a run's times, after a last check for a launch error.
Timing summarize(std::vector<double> ms, int repeats) {
  CUDA_CHECK(cudaGetLastError());
  std::sort(ms.begin(), ms.end());
  return Timing{ms[ms.size() / 2], ms.front(), repeats};
}

}  // namespace

Timing time_launch(const std::function<void(cudaStream_t)>& launch, int repeats, int warmup) {
  Flush& fl = flush();
  TimedStream ts;
  const cudaStream_t s = ts.s;
  for (int i = 0; i < warmup; ++i) launch(s);
  CUDA_CHECK(cudaStreamSynchronize(s));
  CUDA_CHECK(cudaGetLastError());
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    fl.run(s);  // evict the inputs from L2, leaving clean lines
    CUDA_CHECK(cudaEventRecord(ts.start, s));
    launch(s);
    CUDA_CHECK(cudaEventRecord(ts.stop, s));
    ms.push_back(ts.elapsed_ms());
  }
  return summarize(std::move(ms), repeats);
}

Timing time_batched(const std::function<void(cudaStream_t, long)>& launch, int repeats, int batch, int warmup) {
  if (repeats < 1 || batch < 1) throw std::invalid_argument("time_batched: repeats and batch must be >= 1");
  TimedStream ts;
  const cudaStream_t s = ts.s;
  long i = 0;  // counts every launch, warm-up included: the caller's rotation index
  for (int w = 0; w < warmup; ++w) launch(s, i++);
  CUDA_CHECK(cudaStreamSynchronize(s));
  CUDA_CHECK(cudaGetLastError());
  unsigned long long spin_ns = 200000ull + 20000ull * static_cast<unsigned long long>(batch);
  std::vector<double> ms;
  int tries = 0;
  while (static_cast<int>(ms.size()) < repeats) {
    spin_kernel<<<1, 1, 0, s>>>(spin_ns);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaEventRecord(ts.start, s));
    for (int b = 0; b < batch; ++b) launch(s, i++);
    CUDA_CHECK(cudaEventRecord(ts.stop, s));
    // The batch must be queued whole before the spin ends; else the GPU waited on the host.
    const cudaError_t q = cudaEventQuery(ts.start);
    const bool queued_in_time = q == cudaErrorNotReady;
    if (q == cudaErrorNotReady)
      (void)cudaGetLastError();  // "not ready" is an answer, not an error to leave behind
    else
      CUDA_CHECK(q);
    const float t = ts.elapsed_ms();
    if (!queued_in_time && spin_ns < 50000000ull && ++tries < 20) {
      spin_ns *= 2;  // too short a hold: time this batch again with a longer one
      continue;
    }
    ms.push_back(static_cast<double>(t) / batch);
  }
  return summarize(std::move(ms), repeats);
}

const Ceilings& ceilings() {
  static const Ceilings c = measure_ceilings();
  return c;
}

void set_json_output(const std::string& path) { g_json_path = path; }

void report(const Row& r) {
  std::printf("  %-18s %-26s %-40s %9.4f ms %9.2f %-7s %5.1f%% of %s\n", r.family.c_str(), r.version.c_str(),
              r.shape.c_str(), r.ms, r.value, r.unit.c_str(), r.ceiling_pct, r.unit == "GB/s" ? "copy" : "cuBLAS GEMM");
  std::fflush(stdout);
  if (g_json_path.empty()) return;
  std::ofstream f(g_json_path, std::ios::app);
  char line[768];
  std::snprintf(line, sizeof(line),
                "{\"family\": \"%s\", \"version\": \"%s\", \"shape\": \"%s\", \"ms\": %.6f, \"value\": %.4f, "
                "\"unit\": \"%s\", \"ceiling_pct\": %.2f, \"device\": \"%s\", \"copy_gbps\": %.1f, \"gemm_tflops\": %.1f}\n",
                r.family.c_str(), r.version.c_str(), r.shape.c_str(), r.ms, r.value, r.unit.c_str(), r.ceiling_pct,
                ceilings().device.c_str(), ceilings().copy_gbps, ceilings().gemm_tflops);
  f << line;
}

Row row_tflops(const std::string& family, const std::string& version, const std::string& shape, const Timing& t,
               double flops) {
  Row r{family, version, shape, t.median_ms, flops / (t.median_ms * 1e-3) / 1e12, "TFLOP/s", 0.0};
  r.ceiling_pct = 100.0 * r.value / ceiling_for(r.unit);
  return r;
}

Row row_gbps(const std::string& family, const std::string& version, const std::string& shape, const Timing& t,
             double bytes) {
  Row r{family, version, shape, t.median_ms, bytes / (t.median_ms * 1e-3) / 1e9, "GB/s", 0.0};
  r.ceiling_pct = 100.0 * r.value / ceiling_for(r.unit);
  return r;
}

}  // namespace llm::harness
