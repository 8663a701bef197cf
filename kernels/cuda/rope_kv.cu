#include <stdexcept>
#include <string>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/rope_kv.cuh"

namespace llm::cuda {

namespace {

/// One block per token; thread t handles pairs t, t + blockDim, ... over q and k heads, and
/// copies v. The angle of pair i is pos * theta^(-2i / head_dim), computed in fp32 with
/// in double like the CPU twin: at position 32k an fp32 angle would already be off by ~2e-3 rad.
/// (Engines usually precompute a cos/sin table; the few double operations per pair cost
/// nothing next to the memory traffic here.)
__global__ void rope_store_kv_kernel(RopeStoreKvArgs a) {
  const int t = blockIdx.x;
  const int hd = a.head_dim, half_hd = hd / 2;
  const int qk_heads = a.n_heads + a.n_kv_heads;
  const float* row = a.qkv + static_cast<long>(t) * (a.n_heads + 2 * a.n_kv_heads) * hd;
  const int pos = a.positions[t];
  const long slot = a.slots[t];
  for (int p = threadIdx.x; p < qk_heads * half_hd; p += blockDim.x) {
    const int head = p / half_hd, i = p % half_hd;
    const double freq = pow(static_cast<double>(a.theta), -2.0 * i / hd);
    double sd, cd;
    sincos(pos * freq, &sd, &cd);
    const float s = static_cast<float>(sd), c = static_cast<float>(cd);
    const float x0 = row[head * hd + 2 * i], x1 = row[head * hd + 2 * i + 1];
    const __half r0 = __float2half_rn(x0 * c - x1 * s), r1 = __float2half_rn(x0 * s + x1 * c);
    __half* dst = head < a.n_heads ? a.q_out + (static_cast<long>(t) * a.n_heads + head) * hd
                                   : a.k_cache + (slot * a.n_kv_heads + (head - a.n_heads)) * hd;
    dst[2 * i] = r0;
    dst[2 * i + 1] = r1;
  }
  const float* v = row + qk_heads * hd;
  for (int i = threadIdx.x; i < a.n_kv_heads * hd; i += blockDim.x)
    a.v_cache[slot * a.n_kv_heads * hd + i] = __float2half_rn(v[i]);
}

}  // namespace

void rope_store_kv(const RopeStoreKvArgs& a, cudaStream_t stream) {
  if (a.head_dim < 2 || a.head_dim % 2 != 0)
    throw std::invalid_argument("rope_store_kv: head_dim = " + std::to_string(a.head_dim) + " must be even");
  if (a.n_kv_heads < 1 || a.n_heads < 1)
    throw std::invalid_argument("rope_store_kv: n_heads = " + std::to_string(a.n_heads) +
                                ", n_kv_heads = " + std::to_string(a.n_kv_heads) + " must be >= 1");
  if (a.n == 0) return;
  rope_store_kv_kernel<<<a.n, 128, 0, stream>>>(a);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::cuda
