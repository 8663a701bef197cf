// warp_rows.cuh: the end of a GEMV whose warp owns a few output rows (kernels/cuda/quant_gemv/01
// and 03): each lane holds partial sums for kRows rows of W times kN rows of x; the warp adds them
// up with shuffles and one lane per result writes it. (gemv/02 keeps its own copy of this loop:
// through the helper, ptxas spilled 12 bytes in its n = 6 instance.)
#pragma once

#include <cstddef>

namespace llm::cuda {

/// Sums acc[r][i] over the warp; lane r * kN + i then writes y[i, row0 + r] (y: [kN, out] fp32),
/// times scales[row0 + r] when `scales` is given (a per-row weight scale), added to what y holds
/// with `accumulate`. Rows at or past `out` are not written. Every lane of the warp must call it.
template <int kRows, int kN>
__device__ __forceinline__ void warp_sum_store(const float (&acc)[kRows][kN], int lane, int row0, int out, float* y,
                                               bool accumulate, const float* scales = nullptr) {
  static_assert(kN * kRows <= 32, "one lane writes each result");
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int i = 0; i < kN; ++i) {
      float v = acc[r][i];
#pragma unroll
      for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
      if (lane == r * kN + i && row0 + r < out) {
        if (scales != nullptr) v *= scales[row0 + r];
        float* dst = y + static_cast<std::size_t>(i) * out + row0 + r;
        *dst = accumulate ? *dst + v : v;
      }
    }
  }
}

}  // namespace llm::cuda
