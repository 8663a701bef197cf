// 03_fp8_e4m3.cu: decode GEMV with FP8 E4M3 weights and one fp32 scale per row (stage 05's
// --weights fp8: kernels/cpu/quantize.h's quantize_fp8_row), on Hopper.
//
// What it changes against the fp16 GEMV (kernels/cuda/gemv/02_warp_vectorized.cu), and why:
//   1. 1 byte per weight instead of 2: a lane's 16-byte load brings 16 weights, not 8, so the
//      same warp-wide 512-byte coalesced loads move twice the weights.
//   2. The codes are plain row-major ([out][in], as stage 05 stores them): E4M3 codes are whole
//      bytes with no per-block scale, so no re-packing is needed for aligned 16-byte loads.
//   3. Hopper (and Ada, compute capability 8.9) converts two E4M3 codes to an fp16 pair in one
//      instruction (cvt.rn.f16x2.e4m3x2, what cuda_fp8.h's __nv_cvt_fp8x2_to_halfraw2 becomes on
//      sm_89+); E4M3 -> fp16 is exact. The row's scale multiplies the finished dot once.
//   Everything else is gemv 02: a warp per kRows rows, kSteps loads in flight per lane before
//   use, x through the read-only cache, fp32 accumulation, a shuffle reduction.
// A GPU without FP8 conversions (before 8.9) is refused by validate() with one message; this
// build targets sm_90 anyway.
//
// Prefill with FP8 weights: we choose the fp16 path, not cuBLASLt's FP8 GEMM. Dequantize W to fp16
// once per prefill step (a memory-bound pass: 1 byte read, 2 written per weight, small next to the
// 2 * tokens flops per weight of a prefill) and run stage 04's cuBLAS fp16 GEMM (gemm_cublas.cu).
// Why: cuBLASLt's FP8 GEMM multiplies FP8 by FP8, so the activations would need quantizing to
// E4M3 too (a new error source and a kernel to find their scale), and on Hopper it takes one
// scale per tensor, not our scale per row (which would have to be folded into the output). The
// fp16 path keeps prefill's numerics those of decode: fp16 activations, exact weights. That path
// is not wired into stage 04's executor yet (docs/ARCHITECTURE.md, stage 05).
//
// Launch: blocks of 4 warps; kRows = 2 rows per warp for n <= 2 (kSteps 4), 4 otherwise (kSteps
// 2); grid ceil(out / (4 kRows)). Registers per thread (nvcc 13.0, sm_90, -Xptxas -v), n = 1..8:
// 56 71 122 128 157 157 164 185 (2 blocks per SM at n = 8, where the fp32 FMAs bound the time
// anyway: 16 flops per weight byte); no spills.
//
// Run: build/kernels/kernel_harness check quant_gemv --version 3
//      build/kernels/kernel_harness bench quant_gemv --version 3
#include <cuda_fp8.h>

#include <cstdint>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/quant_gemv/quant_gemv.cuh"
#include "kernels/cuda/vector_loads.cuh"
#include "kernels/cuda/warp_rows.cuh"

namespace llm::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;

/// The 16 E4M3 codes of `raw` as floats (exact).
__device__ __forceinline__ void decode16(const uint4& raw, float (&w)[16]) {
  const std::uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const auto pair = static_cast<__nv_fp8x2_storage_t>(words[k] >> (16 * h));
      const __half2_raw raw2 = __nv_cvt_fp8x2_to_halfraw2(pair, __NV_E4M3);
      const float2 f = __half22float2(__half2(raw2));
      w[4 * k + 2 * h] = f.x;
      w[4 * k + 2 * h + 1] = f.y;
    }
  }
}

/// grid ceil(out / (kWarps * kRows)), block kThreads.
template <int kN, int kRows, int kSteps>
__global__ void __launch_bounds__(kThreads) quant_gemv_03_kernel(const std::uint8_t* W, const float* scales,
                                                                 const __half* x, float* y, int in, int out,
                                                                 bool accumulate) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = (blockIdx.x * kWarps + warp) * kRows;
  if (row0 >= out) return;  // the whole warp leaves; no block-wide synchronisation follows

  const int cols = in / 16;  // uint4 per row of codes
  const uint4* w_rows[kRows];
  bool row_ok[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    row_ok[r] = row0 + r < out;
    w_rows[r] = reinterpret_cast<const uint4*>(W) + static_cast<std::size_t>(row_ok[r] ? row0 + r : row0) * cols;
  }
  const uint4* x4 = reinterpret_cast<const uint4*>(x);
  const int xcols = in / 8;

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
      if (c >= cols) continue;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        float wf[16];
        decode16(w[st][r], wf);
#pragma unroll
        for (int i = 0; i < kN; ++i) {
#pragma unroll
          for (int k = 0; k < 2; ++k) {
            float xf[8];
            unpack8(__ldg(x4 + static_cast<std::size_t>(i) * xcols + 2 * static_cast<std::size_t>(c) + k), xf);
#pragma unroll
            for (int j = 0; j < 8; ++j) acc[r][i] = fmaf(wf[8 * k + j], xf[j], acc[r][i]);
          }
        }
      }
    }
  }

  warp_sum_store<kRows, kN>(acc, lane, row0, out, y, accumulate, scales);  // the row's scale applied once
}

template <int kN>
void launch(const QuantGemvArgs& a, cudaStream_t stream) {
  constexpr int kRows = kN <= 2 ? 2 : 4;
  constexpr int kSteps = kN <= 2 ? 4 : 2;
  const int blocks = (a.out + kWarps * kRows - 1) / (kWarps * kRows);
  quant_gemv_03_kernel<kN, kRows, kSteps><<<blocks, kThreads, 0, stream>>>(
      static_cast<const std::uint8_t*>(a.W), static_cast<const float*>(a.scales), a.x, a.y, a.in, a.out, a.accumulate);
}

}  // namespace

void quant_gemv_03_fp8_e4m3(const QuantGemvArgs& a, cudaStream_t stream) {
  validate(a, 3);
  switch (a.n) {
    case 1: launch<1>(a, stream); break;
    case 2: launch<2>(a, stream); break;
    case 3: launch<3>(a, stream); break;
    case 4: launch<4>(a, stream); break;
    case 5: launch<5>(a, stream); break;
    case 6: launch<6>(a, stream); break;
    case 7: launch<7>(a, stream); break;
    default: launch<8>(a, stream); break;
  }
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::cuda
