// rope_kv.cu: RoPE fused with the K/V cache write, for stage 04's fp16 cache (rope_store_kv) and
// stage 05's int8 / FP8 E4M3 cache (rope_store_kv_quant). See rope_kv.cuh.
#include <cuda_fp8.h>

#include <stdexcept>
#include <string>
#include <utility>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/rope_kv.cuh"

namespace llm::cuda {

namespace {

/// Pair i of a head at position pos, rotated: (x0, x1) -> (x0 c - x1 s, x0 s + x1 c). The angle
/// pos * theta^(-2i / head_dim) is computed in double like the CPU twin: at position 32k an fp32
/// angle would already be off by ~2e-3 rad. (Engines usually precompute a cos/sin table; the few
/// double operations per pair cost nothing next to the memory traffic here.)
__device__ __forceinline__ float2 rotate_pair(float x0, float x1, int pos, int i, int hd, float theta) {
  const double freq = pow(static_cast<double>(theta), -2.0 * i / hd);
  double sd, cd;
  sincos(pos * freq, &sd, &cd);
  const float s = static_cast<float>(sd), c = static_cast<float>(cd);
  return make_float2(x0 * c - x1 * s, x0 * s + x1 * c);
}

/// Block t's token (one block per token in both kernels): its q | k | v row, position and KV slot.
struct Token {
  int t;
  const float* row;
  int pos;
  long slot;
};

template <class Args>  // RopeStoreKvArgs or RopeStoreKvQuantArgs
__device__ __forceinline__ Token token_of_block(const Args& a) {
  const int t = blockIdx.x;
  return {t, a.qkv + static_cast<long>(t) * (a.n_heads + 2 * a.n_kv_heads) * a.head_dim, a.positions[t], a.slots[t]};
}

/// The token's q and k heads rotated: thread t takes pairs t, t + blockDim, ... and hands each to
/// store(head, i, rotated pair i of head); heads below n_heads are query heads, the rest KV heads.
template <class Args, class Store>
__device__ __forceinline__ void rotate_q_k(const Args& a, const Token& tok, Store store) {
  const int hd = a.head_dim, half_hd = hd / 2;
  const int qk_heads = a.n_heads + a.n_kv_heads;
  for (int p = threadIdx.x; p < qk_heads * half_hd; p += blockDim.x) {
    const int head = p / half_hd, i = p % half_hd;
    store(head, i, rotate_pair(tok.row[head * hd + 2 * i], tok.row[head * hd + 2 * i + 1], tok.pos, i, hd, a.theta));
  }
}

/// One block per token; thread t handles pairs t, t + blockDim, ... over q and k heads, and
/// copies v.
__global__ void rope_store_kv_kernel(RopeStoreKvArgs a) {
  const Token tok = token_of_block(a);
  const int t = tok.t, hd = a.head_dim, qk_heads = a.n_heads + a.n_kv_heads;
  const long slot = tok.slot;
  rotate_q_k(a, tok, [&](int head, int i, float2 r) {
    __half* dst = head < a.n_heads ? a.q_out + (static_cast<long>(t) * a.n_heads + head) * hd
                                   : a.k_cache + (slot * a.n_kv_heads + (head - a.n_heads)) * hd;
    dst[2 * i] = __float2half_rn(r.x);
    dst[2 * i + 1] = __float2half_rn(r.y);
  });
  const float* v = tok.row + qk_heads * hd;
  for (int i = threadIdx.x; i < a.n_kv_heads * hd; i += blockDim.x)
    a.v_cache[slot * a.n_kv_heads * hd + i] = __float2half_rn(v[i]);
}

/// max of a and b where NaN wins (the CPU twin's max_abs returns NaN as soon as it meets one).
__device__ __forceinline__ float max_nan(float m, float a) {
  return (isnan(a) || a > m) ? a : m;
}

/// The code of y = x / scale: int8 rounded to nearest even and clamped to +-127, or E4M3 rounded
/// to nearest even and saturated at +-448.
template <KvCode C>
__device__ __forceinline__ std::uint8_t encode(float y) {
  if constexpr (C == KvCode::int8) {
    return static_cast<std::uint8_t>(static_cast<std::int8_t>(fminf(fmaxf(rintf(y), -127.0f), 127.0f)));
  } else {
    return static_cast<std::uint8_t>(__nv_cvt_float_to_fp8(y, __NV_SATFINITE, __NV_E4M3));
  }
}

constexpr int kQuantThreads = 128;

/// One block (kQuantThreads) per token. Phase 1 as rope_store_kv_kernel, but the rotated k and the
/// v row stay fp32 in shared memory ([2, kv_dim]); phase 2: one warp per (K or V, KV head) row
/// finds max|x|, writes the scale and the head_dim codes.
template <KvCode C>
__global__ void __launch_bounds__(kQuantThreads) rope_store_kv_quant_kernel(RopeStoreKvQuantArgs a) {
  extern __shared__ float kv[];  // [0, kvd): k, [kvd, 2 kvd): v
  const Token tok = token_of_block(a);
  const int t = tok.t, hd = a.head_dim, kvd = a.n_kv_heads * hd, qk_heads = a.n_heads + a.n_kv_heads;
  const long slot = tok.slot;
  rotate_q_k(a, tok, [&](int head, int i, float2 r) {
    if (head < a.n_heads) {
      __half* dst = a.q_out + (static_cast<long>(t) * a.n_heads + head) * hd;
      dst[2 * i] = __float2half_rn(r.x);
      dst[2 * i + 1] = __float2half_rn(r.y);
    } else {
      float* dst = kv + (head - a.n_heads) * hd;
      dst[2 * i] = r.x;
      dst[2 * i + 1] = r.y;
    }
  });
  const float* v = tok.row + qk_heads * hd;
  for (int i = threadIdx.x; i < kvd; i += blockDim.x) kv[kvd + i] = v[i];
  __syncthreads();

  constexpr float kMax = C == KvCode::int8 ? 127.0f : 448.0f;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int job = warp; job < 2 * a.n_kv_heads; job += kQuantThreads / 32) {
    const bool is_v = job >= a.n_kv_heads;
    const int g = job % a.n_kv_heads;
    const float* x = kv + (is_v ? kvd : 0) + g * hd;
    float m = 0.0f;
    for (int j = lane; j < hd; j += 32) m = max_nan(m, fabsf(x[j]));
#pragma unroll
    for (int off = 16; off > 0; off /= 2) m = max_nan(m, __shfl_xor_sync(0xffffffffu, m, off));
    const long head = slot * a.n_kv_heads + g;
    std::uint8_t* codes = (is_v ? a.v_codes : a.k_codes) + head * hd;
    float* scale = (is_v ? a.v_scales : a.k_scales) + head;
    if (m == 0.0f || !isfinite(m)) {  // zero, NaN or Inf: codes 0, the scale says it
      for (int j = lane; j < hd; j += 32) codes[j] = 0;
      if (lane == 0) *scale = m;
      continue;
    }
    const float s = m / kMax;  // IEEE division (nvcc's default -prec-div=true), as the CPU's
    for (int j = lane; j < hd; j += 32) codes[j] = encode<C>(x[j] / s);
    if (lane == 0) *scale = s;
  }
}

void check_heads(int head_dim, int n_heads, int n_kv_heads, const char* who) {
  if (head_dim < 2 || head_dim % 2 != 0)
    throw std::invalid_argument(std::string(who) + ": head_dim = " + std::to_string(head_dim) + " must be even");
  if (n_kv_heads < 1 || n_heads < 1)
    throw std::invalid_argument(std::string(who) + ": n_heads = " + std::to_string(n_heads) +
                                ", n_kv_heads = " + std::to_string(n_kv_heads) + " must be >= 1");
}

}  // namespace

void rope_store_kv(const RopeStoreKvArgs& a, cudaStream_t stream) {
  check_heads(a.head_dim, a.n_heads, a.n_kv_heads, "rope_store_kv");
  if (a.n == 0) return;
  rope_store_kv_kernel<<<a.n, 128, 0, stream>>>(a);
  CUDA_CHECK(cudaGetLastError());
}

void rope_store_kv_quant(const RopeStoreKvQuantArgs& a, cudaStream_t stream) {
  check_heads(a.head_dim, a.n_heads, a.n_kv_heads, "rope_store_kv_quant");
  const std::size_t shared = 2 * static_cast<std::size_t>(a.n_kv_heads) * a.head_dim * sizeof(float);
  if (shared > 48 * 1024)
    throw std::invalid_argument(
        "rope_store_kv_quant: n_kv_heads x head_dim = " + std::to_string(a.n_kv_heads * a.head_dim) +
        " (k and v rows must fit 48 KiB: at most 6144)");
  for (const auto& [p, name] : {std::pair<const void*, const char*>{a.k_codes, "k_codes"},
                                {a.v_codes, "v_codes"},
                                {a.k_scales, "k_scales"},
                                {a.v_scales, "v_scales"}})
    if (p == nullptr) throw std::invalid_argument(std::string("rope_store_kv_quant: ") + name + " is null");
  if (a.n == 0) return;
  if (a.code == KvCode::int8)
    rope_store_kv_quant_kernel<KvCode::int8><<<a.n, kQuantThreads, shared, stream>>>(a);
  else
    rope_store_kv_quant_kernel<KvCode::fp8_e4m3><<<a.n, kQuantThreads, shared, stream>>>(a);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::cuda
