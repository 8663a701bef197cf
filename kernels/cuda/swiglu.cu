#include "kernels/cuda/check.cuh"
#include "kernels/cuda/swiglu.cuh"

namespace llm::cuda {

namespace {

/// A grid-stride loop over the n * ff outputs: consecutive threads, consecutive elements
/// (coalesced reads of both halves of the row and of the output).
__global__ void swiglu_kernel(__half* out, const float* gate_up, int n, int ff) {
  const long total = static_cast<long>(n) * ff;
  for (long idx = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<long>(gridDim.x) * blockDim.x) {
    const long r = idx / ff, i = idx % ff;
    const float g = gate_up[r * 2 * ff + i], u = gate_up[r * 2 * ff + ff + i];
    out[idx] = __float2half_rn(g / (1.0f + expf(-g)) * u);
  }
}

}  // namespace

void swiglu_to_half(__half* out, const float* gate_up, int n, int ff, cudaStream_t stream) {
  const long total = static_cast<long>(n) * ff;
  if (total == 0) return;
  const int threads = 256;
  const long blocks = (total + threads - 1) / threads;
  swiglu_kernel<<<static_cast<int>(blocks < 65535 * 16 ? blocks : 65535 * 16), threads, 0, stream>>>(out, gate_up, n, ff);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::cuda
