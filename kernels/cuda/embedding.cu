#include "kernels/cuda/check.cuh"
#include "kernels/cuda/embedding.cuh"

namespace llm::cuda {

namespace {

/// One block per token, threads across the row (coalesced).
__global__ void embedding_kernel(float* x, const __half* table, const int* tokens, int dim) {
  const __half* src = table + static_cast<long>(tokens[blockIdx.x]) * dim;
  float* dst = x + static_cast<long>(blockIdx.x) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = __half2float(src[i]);
}

}  // namespace

void embedding(float* x, const __half* table, const int* tokens, int n, int dim, cudaStream_t stream) {
  if (n == 0) return;
  embedding_kernel<<<n, 256, 0, stream>>>(x, table, tokens, dim);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::cuda
