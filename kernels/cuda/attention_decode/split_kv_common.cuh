// split_merge.cuh: the second kernel of split-KV decode attention (versions 02 and 03): the
// partial results of a sequence's splits merged into its output. Split s of (sequence b, head h)
// left m_s (max score, log2 units), l_s (sum of 2^(score - m_s)) and o_s (sum of 2^(score - m_s) v,
// unnormalised); the merge computes m = max m_s, l = sum l_s 2^(m_s - m), out = sum o_s 2^(m_s - m) / l,
// rounded to fp16. Splits with l = 0 (no keys) are skipped, so -inf - -inf never happens.
#pragma once

#include <cuda_fp16.h>

#include <cstddef>

namespace llm::cuda {

/// Warps per block of the merge kernel (and of the split kernels that share its constants).
inline constexpr int kMergeWarps = 4;

// An unnamed namespace: each .cu file that includes this gets its own copy of the kernel (no
// relocatable device code needed).
namespace merge_detail {
namespace {
constexpr int kWarps = kMergeWarps;
constexpr int kThreads = kWarps * 32;

/// Max or sum over the block (kThreads threads); every thread gets the result. `buf` holds
/// kWarps floats; the leading __syncthreads lets a caller reuse it for a second reduction.
template <bool kMax>
__device__ float block_reduce(float v, float* buf) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other = __shfl_xor_sync(0xffffffffu, v, offset);
    v = kMax ? fmaxf(v, other) : v + other;
  }
  __syncthreads();
  if (threadIdx.x % 32 == 0) buf[threadIdx.x / 32] = v;
  __syncthreads();
  v = buf[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) v = kMax ? fmaxf(v, buf[w]) : v + buf[w];
  return v;
}

/// grid (n_heads, batch), block kThreads: merges the splits of one (sequence, head). Thread d
/// handles head_dim value d (coalesced reads of o_part); every thread recomputes the split
/// weights 2^(m_s - m) (a few hundred exp2f at most), which needs no shared array per split.
__global__ void __launch_bounds__(kThreads)
    merge_splits_kernel(const float* o_part, const float* ml, __half* out, int n_heads, int splits, int head_dim) {
  __shared__ float buf[kWarps];
  const std::size_t head_row = static_cast<std::size_t>(blockIdx.y) * n_heads + blockIdx.x;
  const float* ml_row = ml + head_row * splits * 2;
  const float* o_row = o_part + head_row * splits * head_dim;

  float mx = -INFINITY;
  for (int s = threadIdx.x; s < splits; s += kThreads)
    if (ml_row[2 * s + 1] > 0.0f) mx = fmaxf(mx, ml_row[2 * s]);
  const float M = block_reduce<true>(mx, buf);

  for (int d = threadIdx.x; d < head_dim; d += kThreads) {
    float L = 0.0f, O = 0.0f;
#pragma unroll 4
    for (int s = 0; s < splits; ++s) {
      const float ls = ml_row[2 * s + 1];
      if (ls > 0.0f) {  // empty splits (l = 0, m = -inf) are skipped
        const float e = exp2f(ml_row[2 * s] - M);
        L = fmaf(ls, e, L);
        O = fmaf(o_row[static_cast<std::size_t>(s) * head_dim + d], e, O);
      }
    }
    out[head_row * head_dim + d] = __float2half_rn(L > 0.0f ? O / L : 0.0f);
  }
}

}  // namespace
}  // namespace merge_detail

using merge_detail::merge_splits_kernel;

}  // namespace llm::cuda
