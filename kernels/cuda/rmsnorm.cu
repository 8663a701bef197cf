#include "kernels/cuda/check.cuh"
#include "kernels/cuda/rmsnorm.cuh"

namespace llm::cuda {

namespace {

constexpr int kThreads = 256;

/// Sum of v over the block (every thread gets the result).
__device__ float block_sum(float v) {
  __shared__ float partial[kThreads / 32];
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < kThreads / 32; ++w) total += partial[w];
  __syncthreads();  // partial may be reused by the next call
  return total;
}

__global__ void rmsnorm_kernel(float* y, const float* x, const float* weight, int dim, float eps) {
  const float* xr = x + static_cast<long>(blockIdx.x) * dim;
  float* yr = y + static_cast<long>(blockIdx.x) * dim;
  float sum = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) sum += xr[i] * xr[i];
  const float inv_rms = rsqrtf(block_sum(sum) / dim + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = xr[i] * inv_rms * weight[i];
}

__global__ void add_rmsnorm_to_half_kernel(__half* y, float* x, const float* delta, const float* weight, int dim,
                                           float eps) {
  float* xr = x + static_cast<long>(blockIdx.x) * dim;
  __half* yr = y + static_cast<long>(blockIdx.x) * dim;
  const float* dr = delta ? delta + static_cast<long>(blockIdx.x) * dim : nullptr;
  float sum = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = xr[i];
    if (dr) xr[i] = v = v + dr[i];  // the residual add, written back once
    sum += v * v;
  }
  const float inv_rms = rsqrtf(block_sum(sum) / dim + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = __float2half_rn(xr[i] * inv_rms * weight[i]);
}

}  // namespace

void rmsnorm(float* y, const float* x, const float* weight, int n, int dim, float eps, cudaStream_t stream) {
  if (n == 0) return;
  rmsnorm_kernel<<<n, kThreads, 0, stream>>>(y, x, weight, dim, eps);
  CUDA_CHECK(cudaGetLastError());
}

void add_rmsnorm_to_half(__half* y, float* x, const float* delta, const float* weight, int n, int dim, float eps,
                         cudaStream_t stream) {
  if (n == 0) return;
  add_rmsnorm_to_half_kernel<<<n, kThreads, 0, stream>>>(y, x, delta, weight, dim, eps);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::cuda
