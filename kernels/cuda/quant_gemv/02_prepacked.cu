// 02_prepacked.cu: quantized decode GEMV, version 2: the weights re-packed once, at load, so that
// every 16-byte load is one lane's own weights (Marlin-style; packed_layout.h has the layout,
// prepack.cpp the packer and its inverse, both tested on the CPU).
//
// What the layout changes against GGUF's (01_fused_16B.cu), and why it should be faster:
//   1. Scales and quants are separated: the quants of a row are whole 16-byte chunks (half a Q8_0
//      block, one Q4_0 block), so a lane loads its chunk straight into registers with one uint4
//      load: no trip through shared memory, no bank conflicts, no 2-byte loads.
//   2. Blocks of 8 consecutive rows are interleaved chunk by chunk: lane l holds row l % 8, chunk
//      4s + l / 8 in step s, and the 32 lanes' chunks are 512 contiguous bytes. A group of 8 rows
//      is one contiguous stretch of memory that a block of 4 warps streams through (each warp a
//      quarter of the steps, kSteps loads in flight per lane), instead of 8 separate rows.
//   3. The 8 lanes reading one chunk column read 16 contiguous bytes of fp16 scales; a lane keeps
//      its scale in a register for its chunk.
//   4. Q4_0 nibbles are reordered in each 32-bit word so that (word >> 4p) & 0x000F000F | 0x64006400
//      is two consecutive weights as fp16 1024 + q (one LOP3 after the shift), and one HSUB2 of
//      1032 gives q - 8 exactly; Q8_0 bytes become an fp16 pair with one XOR and one PRMT. Both
//      pairs meet x's half2 pairs in order; the products and sums are fp32.
// The cost moved to load time: a pass over W on the CPU (prepack.cpp), and the same bytes on the
// device (plus padding to whole groups of 8 rows and whole steps).
//
// Launch: one block of 4 warps per group of 8 rows (512 blocks for 4096 rows, 1792 for 14336); a
// partial sum per row per warp, merged through 4 * n * 8 floats of shared memory.
// Registers per thread (nvcc 13.0, sm_90, -Xptxas -v), n = 1..8: Q8_0 64 94 80 96 102 102 128 128,
// Q4_0 72 123 108 128 128 138 142 106; no spills.
//
// Run: build/kernels/kernel_harness check quant_gemv --version 2
//      build/kernels/kernel_harness bench quant_gemv --version 2
#include <cstdint>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/quant_gemv/packed_layout.h"
#include "kernels/cuda/quant_gemv/quant_gemv.cuh"
#include "kernels/cuda/vector_loads.cuh"

namespace llm::cuda {

namespace {

using qgemv::PackedShape;
using qgemv::PackedType;

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kSteps = 4;  // 16-byte chunks each lane loads before it uses any: 2 KiB per warp

/// The weights of one 16-byte chunk as floats: 16 (Q8_0) or 32 (Q4_0), in element order.
template <PackedType T>
__device__ __forceinline__ void decode_chunk(const uint4& raw, float (&w)[qgemv::weights_per_chunk(T)]) {
  const std::uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    if constexpr (T == PackedType::Q8_0) {
      const __half2 bias = __half2(__ushort_as_half(qgemv::kQ8Bias), __ushort_as_half(qgemv::kQ8Bias));
#pragma unroll
      for (int p = 0; p < 2; ++p) {
        const std::uint32_t bits = qgemv::q8_pair_bits(words[k], p);
        const float2 f = __half22float2(__hsub2(*reinterpret_cast<const __half2*>(&bits), bias));
        w[4 * k + 2 * p] = f.x;
        w[4 * k + 2 * p + 1] = f.y;
      }
    } else {
      const __half2 bias = __half2(__ushort_as_half(qgemv::kQ4Bias), __ushort_as_half(qgemv::kQ4Bias));
#pragma unroll
      for (int p = 0; p < 4; ++p) {
        const std::uint32_t bits = qgemv::q4_pair_bits(words[k], p);
        const float2 f = __half22float2(__hsub2(*reinterpret_cast<const __half2*>(&bits), bias));
        w[8 * k + 2 * p] = f.x;
        w[8 * k + 2 * p + 1] = f.y;
      }
    }
  }
}

/// grid p.groups(), block kThreads.
template <PackedType T, int kN>
__global__ void __launch_bounds__(kThreads)
    quant_gemv_02_kernel(const uint4* Q, const __half* S, const __half* x, float* y, PackedShape p, bool accumulate) {
  constexpr int WPC = qgemv::weights_per_chunk(T);
  constexpr int kXLoads = WPC / 8;  // 16-byte loads of x per chunk and row of x
  __shared__ float partial[kWarps][kN][qgemv::kPackRows];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = blockIdx.x;
  const int r = qgemv::lane_row(lane);
  const int chunks = p.chunks_per_row(), steps = p.steps();
  const uint4* x4 = reinterpret_cast<const uint4*>(x);
  const int xcols = p.in / 8;

  float acc[kN];
#pragma unroll
  for (int i = 0; i < kN; ++i) acc[i] = 0.0f;

  for (int s0 = warp * kSteps; s0 < steps; s0 += kWarps * kSteps) {
    uint4 q[kSteps];
    float d[kSteps];
#pragma unroll
    for (int st = 0; st < kSteps; ++st) {
      const int s = s0 + st, c = qgemv::lane_chunk(s, lane);
      const bool ok = s < steps && c < chunks;  // the last step's padding chunks are skipped
      q[st] = ok ? __ldcs(Q + qgemv::chunk_index(p, g, s, lane)) : make_uint4(0, 0, 0, 0);
      d[st] = ok ? __half2float(__ldg(S + qgemv::scale_index(p, g, qgemv::chunk_block(T, c), r))) : 0.0f;
    }
#pragma unroll
    for (int st = 0; st < kSteps; ++st) {
      const int s = s0 + st, c = qgemv::lane_chunk(s, lane);
      if (s >= steps || c >= chunks) continue;
      float w[WPC];
      decode_chunk<T>(q[st], w);
#pragma unroll
      for (int i = 0; i < kN; ++i) {
        float sum = 0.0f;
#pragma unroll
        for (int k = 0; k < kXLoads; ++k) {
          float xf[8];
          unpack8(__ldg(x4 + static_cast<std::size_t>(i) * xcols + static_cast<std::size_t>(c) * kXLoads + k), xf);
#pragma unroll
          for (int j = 0; j < 8; ++j) sum = fmaf(w[8 * k + j], xf[j], sum);
        }
        acc[i] = fmaf(d[st], sum, acc[i]);
      }
    }
  }

  // Lanes l, l + 8, l + 16, l + 24 hold row l's partial sums; then the 4 warps' sums.
#pragma unroll
  for (int i = 0; i < kN; ++i) {
    float v = acc[i];
    v += __shfl_xor_sync(0xffffffffu, v, 8);
    v += __shfl_xor_sync(0xffffffffu, v, 16);
    if (lane < qgemv::kPackRows) partial[warp][i][lane] = v;
  }
  __syncthreads();
  for (int t = threadIdx.x; t < kN * qgemv::kPackRows; t += kThreads) {
    const int i = t / qgemv::kPackRows, rr = t % qgemv::kPackRows;
    const int row = g * qgemv::kPackRows + rr;
    if (row >= p.out) continue;
    float v = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) v += partial[w][i][rr];
    float* dst = y + static_cast<std::size_t>(i) * p.out + row;
    *dst = accumulate ? *dst + v : v;
  }
}

template <PackedType T, int kN>
void launch(const QuantGemvArgs& a, cudaStream_t stream) {
  PackedShape p;
  p.type = T;
  p.in = a.in;
  p.out = a.out;
  quant_gemv_02_kernel<T, kN><<<p.groups(), kThreads, 0, stream>>>(
      static_cast<const uint4*>(a.W), static_cast<const __half*>(a.scales), a.x, a.y, p, a.accumulate);
}

template <PackedType T>
void dispatch(const QuantGemvArgs& a, cudaStream_t stream) {
  switch (a.n) {
    case 1: return launch<T, 1>(a, stream);
    case 2: return launch<T, 2>(a, stream);
    case 3: return launch<T, 3>(a, stream);
    case 4: return launch<T, 4>(a, stream);
    case 5: return launch<T, 5>(a, stream);
    case 6: return launch<T, 6>(a, stream);
    case 7: return launch<T, 7>(a, stream);
    default: return launch<T, 8>(a, stream);
  }
}

}  // namespace

void quant_gemv_02_prepacked(const QuantGemvArgs& a, cudaStream_t stream) {
  validate(a, 2);
  if (a.format == QuantFormat::Q8_0)
    dispatch<PackedType::Q8_0>(a, stream);
  else
    dispatch<PackedType::Q4_0>(a, stream);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::cuda
