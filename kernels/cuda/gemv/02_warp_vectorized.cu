// 02_warp_vectorized.cu: decode GEMV, version 2: coalesced 16-byte loads, a warp per few rows.
//
// What changes against 01_naive.cu, and why it should be faster:
//   1. A warp owns kRows consecutive output rows. Lane i reads bytes 16i .. 16i+15 of a
//      512-byte stretch of a row (one uint4 = 8 fp16): a warp instruction moves 512 contiguous
//      bytes, every sector fully used, instead of 32 scattered 2-byte reads.
//   2. Each lane issues kSteps x kRows such loads before it uses any (8 x 16 B = 4 KiB per warp
//      in flight), so that a few warps per SM cover the memory latency. W is read with
//      ld.global.cs (streaming): it is used once and should not push x out of the caches.
//   3. x (n <= 8 rows, at most 8 * 14336 * 2 = 224 KiB: too big for shared memory at the widest
//      `in`) is read through the read-only cache with the same 16-byte pattern; all warps of an
//      SM read the same x, so it comes from L1/L2, not DRAM. Every x load serves kRows rows of W,
//      which keeps L1 traffic at n / kRows times the W traffic (2x for n = 8).
//   4. kRows * n fp32 accumulators per lane, summed over the warp with shuffles at the end.
//
// Shape of the work (templated on n, so every loop is unrolled and the accumulators stay in
// registers): n <= 2: kRows = 2, kSteps = 4; n > 2: kRows = 4, kSteps = 2 (more rows for x
// reuse, fewer steps for registers). Blocks of 4 warps: 4096 rows at n = 1 make 512 blocks,
// about 4 per SM, 16 warps per SM.
//
// Run: build/kernels/kernel_harness check gemv --version 2
//      build/kernels/kernel_harness bench gemv --version 2
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/vector_loads.cuh"
#include "kernels/cuda/gemv/gemv.cuh"

namespace llm::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;


/// grid ceil(out / (kWarps * kRows)), block kThreads. kN: rows of x; kRows: rows of W per warp;
/// kSteps: 512-byte stretches per row loaded before use.
template <int kN, int kRows, int kSteps>
__global__ void __launch_bounds__(kThreads)
    gemv_warp_kernel(const __half* W, const __half* x, float* y, int in, int out, bool accumulate) {
  static_assert(kN * kRows <= 32, "one lane writes each result");
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = (blockIdx.x * kWarps + warp) * kRows;
  if (row0 >= out) return;  // the whole warp leaves; no block-wide synchronisation follows

  const int cols = in / 8;  // uint4 per row
  const uint4* w_rows[kRows];
  bool row_ok[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    row_ok[r] = row0 + r < out;  // out need not be a multiple of kRows
    w_rows[r] = reinterpret_cast<const uint4*>(W) + static_cast<std::size_t>(row_ok[r] ? row0 + r : row0) * cols;
  }
  const uint4* x4 = reinterpret_cast<const uint4*>(x);

  float acc[kRows][kN];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int i = 0; i < kN; ++i) acc[r][i] = 0.0f;

  for (int c0 = lane; c0 < cols; c0 += 32 * kSteps) {
    uint4 w[kSteps][kRows];
#pragma unroll
    for (int st = 0; st < kSteps; ++st) {
      const int c = c0 + 32 * st;
#pragma unroll
      for (int r = 0; r < kRows; ++r) w[st][r] = c < cols && row_ok[r] ? __ldcs(w_rows[r] + c) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int st = 0; st < kSteps; ++st) {
      const int c = c0 + 32 * st;
      if (c < cols) {
        float wf[kRows][8];
#pragma unroll
        for (int r = 0; r < kRows; ++r) unpack8(w[st][r], wf[r]);
#pragma unroll
        for (int i = 0; i < kN; ++i) {
          float xf[8];
          unpack8(__ldg(x4 + static_cast<std::size_t>(i) * cols + c), xf);
#pragma unroll
          for (int r = 0; r < kRows; ++r)
#pragma unroll
            for (int j = 0; j < 8; ++j) acc[r][i] = fmaf(wf[r][j], xf[j], acc[r][i]);
        }
      }
    }
  }

  // Sum each accumulator over the warp; lane r * kN + i then writes y[i, row0 + r].
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int i = 0; i < kN; ++i) {
      float v = acc[r][i];
#pragma unroll
      for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
      if (lane == r * kN + i && row_ok[r]) {
        float* dst = y + static_cast<std::size_t>(i) * out + row0 + r;
        *dst = accumulate ? *dst + v : v;
      }
    }
  }
}

template <int kN>
void launch(const GemvArgs& a, cudaStream_t stream) {
  constexpr int kRows = kN <= 2 ? 2 : 4;
  constexpr int kSteps = kN <= 2 ? 4 : 2;
  const int blocks = (a.out + kWarps * kRows - 1) / (kWarps * kRows);
  gemv_warp_kernel<kN, kRows, kSteps><<<blocks, kThreads, 0, stream>>>(a.W, a.x, a.y, a.in, a.out, a.accumulate);
}

}  // namespace

/// Version 2: a warp per kRows output rows, 16-byte coalesced loads of W, x through the
/// read-only cache, fp32 accumulation and a shuffle reduction.
void gemv_02_warp_vectorized(const GemvArgs& a, cudaStream_t stream) {
  validate(a);
  switch (a.n) {
    case 1:
      launch<1>(a, stream);
      break;
    case 2:
      launch<2>(a, stream);
      break;
    case 3:
      launch<3>(a, stream);
      break;
    case 4:
      launch<4>(a, stream);
      break;
    case 5:
      launch<5>(a, stream);
      break;
    case 6:
      launch<6>(a, stream);
      break;
    case 7:
      launch<7>(a, stream);
      break;
    default:
      launch<8>(a, stream);
      break;
  }
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::cuda
