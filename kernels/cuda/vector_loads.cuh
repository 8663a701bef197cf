// vector_loads.cuh: the 16-byte load idiom of the memory-bound kernels (decode attention,
// GEMV): one uint4 load brings 8 fp16 values, unpacked here to fp32 in registers.
#pragma once

#include <cuda_fp16.h>

namespace llm::cuda {

/// The 8 fp16 values packed in `raw`, as floats.
__device__ __forceinline__ void unpack8(const uint4& raw, float (&f)[8]) {
  const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 t = __half22float2(h[i]);
    f[2 * i] = t.x;
    f[2 * i + 1] = t.y;
  }
}

}  // namespace llm::cuda
