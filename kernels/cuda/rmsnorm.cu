#include "kernels/cuda/check.cuh"
#include "kernels/cuda/rmsnorm.cuh"

namespace llm::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void rmsnorm_kernel(float* y, const float* x, const float* weight, int dim, float eps) {
  const float* xr = x + static_cast<long>(blockIdx.x) * dim;
  float* yr = y + static_cast<long>(blockIdx.x) * dim;
  __shared__ float partial[kThreads];
  float sum = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) sum += xr[i] * xr[i];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  const float inv_rms = rsqrtf(partial[0] / dim + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = xr[i] * inv_rms * weight[i];
}

}  // namespace

void rmsnorm(float* y, const float* x, const float* weight, int n, int dim, float eps) {
  if (n == 0) return;
  rmsnorm_kernel<<<n, kThreads>>>(y, x, weight, dim, eps);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::cuda
