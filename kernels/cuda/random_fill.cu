#include <algorithm>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/random_fill.cuh"

namespace llm::cuda {

namespace {

/// splitmix64: a counter-based generator, so every thread computes its own value statelessly.
__device__ __forceinline__ std::uint64_t splitmix64(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

__global__ void fill_uniform_half_kernel(__half* p, std::size_t n, std::uint64_t seed, float scale) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::uint64_t z = splitmix64(seed ^ (i * 0xD1B54A32D192ED03ull));
    const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // 24 bits: [0, 1)
    p[i] = __float2half_rn((2.0f * u - 1.0f) * scale);
  }
}

__global__ void fill_constant_kernel(float* p, std::size_t n, float value) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    p[i] = value;
}

int blocks_for(std::size_t n) { return static_cast<int>(std::min<std::size_t>((n + 255) / 256, 4096)); }

}  // namespace

void fill_uniform_half(__half* p, std::size_t n, std::uint64_t seed, float scale, cudaStream_t stream) {
  if (n == 0) return;
  fill_uniform_half_kernel<<<blocks_for(n), 256, 0, stream>>>(p, n, seed, scale);
  CUDA_CHECK(cudaGetLastError());
}

void fill_constant(float* p, std::size_t n, float value, cudaStream_t stream) {
  if (n == 0) return;
  fill_constant_kernel<<<blocks_for(n), 256, 0, stream>>>(p, n, value);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::cuda
