// kv_gather.cu: a sequence's K/V out of the paged cache as contiguous fp16 rows (kv_gather.cuh).
#include <cuda_fp8.h>

#include <cstddef>
#include <stdexcept>
#include <string>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/kv_gather.cuh"

namespace llm::cuda {

namespace {

__device__ __forceinline__ std::size_t slot_of(const int* table, int p, int block_size) {
  return static_cast<std::size_t>(table[p / block_size]) * block_size + p % block_size;
}

/// Block p (one per position) copies position p's row of K and of V: kv_dim halves per row,
/// 16-byte copies when kv_dim % 8 == 0 (always, for the head dims the attention kernels take).
__global__ void gather_kv_kernel(GatherKvArgs a) {
  const int p = blockIdx.x, kv_dim = a.n_kv_heads * a.head_dim;
  const std::size_t src = slot_of(a.table, p, a.block_size) * kv_dim, dst = static_cast<std::size_t>(p) * kv_dim;
  if (kv_dim % 8 == 0) {
    const uint4* ks = reinterpret_cast<const uint4*>(a.k_cache + src);
    const uint4* vs = reinterpret_cast<const uint4*>(a.v_cache + src);
    uint4* kd = reinterpret_cast<uint4*>(a.k_out + dst);
    uint4* vd = reinterpret_cast<uint4*>(a.v_out + dst);
    for (int i = threadIdx.x; i < kv_dim / 8; i += blockDim.x) {
      kd[i] = ks[i];
      vd[i] = vs[i];
    }
  } else {
    for (int i = threadIdx.x; i < kv_dim; i += blockDim.x) {
      a.k_out[dst + i] = a.k_cache[src + i];
      a.v_out[dst + i] = a.v_cache[src + i];
    }
  }
}

/// The value of one code (exact).
template <KvCode C>
__device__ __forceinline__ float decode(std::uint8_t code) {
  if constexpr (C == KvCode::int8) {
    return static_cast<float>(static_cast<std::int8_t>(code));
  } else {
    return __half2float(__half(__nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(code), __NV_E4M3)));
  }
}

/// Block p (one per position): out = fp16(decode(code) * scale of its (token, KV head)).
template <KvCode C>
__global__ void gather_kv_dequant_kernel(GatherKvArgs a) {
  const int p = blockIdx.x, kv_dim = a.n_kv_heads * a.head_dim;
  const std::size_t slot = slot_of(a.table, p, a.block_size);
  const std::size_t src = slot * kv_dim, dst = static_cast<std::size_t>(p) * kv_dim;
  const float* ks = a.k_scales + slot * a.n_kv_heads;
  const float* vs = a.v_scales + slot * a.n_kv_heads;
  for (int i = threadIdx.x; i < kv_dim; i += blockDim.x) {
    const int g = i / a.head_dim;
    a.k_out[dst + i] = __float2half_rn(decode<C>(a.k_codes[src + i]) * ks[g]);
    a.v_out[dst + i] = __float2half_rn(decode<C>(a.v_codes[src + i]) * vs[g]);
  }
}

void check_shape(const GatherKvArgs& a, const char* who) {
  auto fail = [&](const std::string& what) { throw std::invalid_argument(std::string(who) + ": " + what); };
  if (a.len < 0) fail("len = " + std::to_string(a.len) + " (must be >= 0)");
  if (a.block_size < 1) fail("block_size = " + std::to_string(a.block_size) + " (must be >= 1)");
  if (a.n_kv_heads < 1 || a.head_dim < 1)
    fail("n_kv_heads = " + std::to_string(a.n_kv_heads) + ", head_dim = " + std::to_string(a.head_dim) +
         " (must be >= 1)");
  if (a.len > 0 && (!a.k_out || !a.v_out || !a.table)) fail("k_out, v_out and table must not be null");
}

}  // namespace

void gather_kv(const GatherKvArgs& a, cudaStream_t stream) {
  check_shape(a, "gather_kv");
  if (a.len == 0) return;
  if (!a.k_cache || !a.v_cache) throw std::invalid_argument("gather_kv: k_cache and v_cache must not be null");
  gather_kv_kernel<<<a.len, 128, 0, stream>>>(a);
  CUDA_CHECK(cudaGetLastError());
}

void gather_kv_dequant(const GatherKvArgs& a, cudaStream_t stream) {
  check_shape(a, "gather_kv_dequant");
  if (a.len == 0) return;
  if (!a.k_codes || !a.v_codes || !a.k_scales || !a.v_scales)
    throw std::invalid_argument("gather_kv_dequant: k_codes, v_codes, k_scales and v_scales must not be null");
  if (a.code == KvCode::int8)
    gather_kv_dequant_kernel<KvCode::int8><<<a.len, 128, 0, stream>>>(a);
  else
    gather_kv_dequant_kernel<KvCode::fp8_e4m3><<<a.len, 128, 0, stream>>>(a);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::cuda
