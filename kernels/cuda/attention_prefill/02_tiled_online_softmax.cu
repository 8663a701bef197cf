// 02_tiled_online_softmax.cu: FlashAttention-2 on CUDA cores. Change from 01: the score matrix
// never exists. A block owns a tile of Br = 32 queries of one head; it walks the keys in tiles of
// Bc = 32 rows, staging each K and V tile in shared memory, and keeps per query a running max m,
// a running sum l and an unnormalised output o (the online softmax):
//
//   for each K/V tile:  s = q K_tile^T * scale
//                       m' = max(m, max s);  p = exp(s - m')
//                       l  = l e^(m - m') + sum p;   o = o e^(m - m') + p V_tile;   m = m'
//   at the end:         out = o / l
//
// Why it is faster than 01:
//   - memory: global traffic drops from O(q_len * kv_len) (the fp32 scores, three passes) to
//     reading Q and out once and K, V once per query tile (q_len / 32 times), all in fp16.
//   - reuse: a K/V element loaded to shared memory serves 32 queries; a q element in shared
//     memory serves 32 keys. Each thread keeps 8 queries' state in registers, so every K or V
//     value it reads from shared memory feeds 8 FMAs (register blocking): shared-memory bandwidth,
//     not the FMA units, would otherwise be the limit.
//   - causal: key tiles entirely after a query tile's last position are never visited, halving
//     the work; 01 computed and masked them.
// All arithmetic is fp32 on CUDA cores (fp16 only in memory); 03 moves the two products to
// tensor cores.
//
// Work split inside a block (4 warps, 128 threads): warp w owns query rows 8w .. 8w+7 of the tile.
//   QK^T: lane owns key `lane` of the tile and computes its score against the warp's 8 queries.
//   softmax: the row max is a warp shuffle reduction; each lane keeps a partial l for the row
//            (rescaled like o), summed across the warp only once, at the end.
//   PV:   lane owns head_dim/32 consecutive output dims (1, 2 or 4) of the warp's 8 rows; P goes
//         through shared memory so every lane can read every probability.
// Scores are kept in the log2 domain (q pre-multiplied by scale * log2(e)) so exp is one exp2f.
//
// Run it:
//   build/kernels/kernel_harness check attention_prefill --version 2
//   build/kernels/kernel_harness bench attention_prefill --version 2
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cuda/attention_prefill/attention_prefill.cuh"
#include "kernels/cuda/check.cuh"

namespace llm::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kRowsPerWarp = 8;             // queries per warp: the register blocking factor
constexpr int kBr = kWarps * kRowsPerWarp;  // 32 queries per block
constexpr int kBc = 32;                     // keys per K/V tile: one per lane
constexpr float kLog2e = 1.4426950408889634f;

/// Shared memory layout, in floats (every offset a multiple of 4, so float4 accesses align).
template <int D>
struct Smem {
  // K rows are read by 32 lanes at once, one row each: padding the row by 4 floats puts the 8
  // lanes of each float4 phase in 8 different bank groups (no bank conflicts).
  static constexpr int kKStride = D + 4;
  static constexpr int q = 0;                   // Q tile [kBr][D], pre-scaled
  static constexpr int k = q + kBr * D;         // K tile [kBc][kKStride]
  static constexpr int v = k + kBc * kKStride;  // V tile [kBc][D]
  static constexpr int p = v + kBc * D;         // probabilities [kBr][kBc]
  static constexpr int floats = p + kBr * kBc;
  static constexpr std::size_t bytes = floats * sizeof(float);
};

__device__ __forceinline__ float warp_max(float x) {
  for (int o = 16; o > 0; o /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ float warp_sum(float x) {
  for (int o = 16; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

/// Copies `rows` rows of D fp16 values (row r at src + r * ld) into shared memory as fp32
/// multiplied by `mul`, row stride `sstride` floats. Rows >= n_valid (past the end of the
/// sequence) are filled with zeros: never read out of bounds, never leave garbage that could
/// turn 0 * garbage into NaN. Each thread moves 16-byte chunks (8 halves) so global reads are
/// coalesced and vectorised.
template <int D>
__device__ __forceinline__ void load_tile(float* dst, int sstride, const __half* src, std::size_t ld, int rows,
                                          int n_valid, float mul) {
  constexpr int kChunks = D / 8;
  for (int c = threadIdx.x; c < rows * kChunks; c += kThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    float f[8] = {};
    if (r < n_valid) {
      const uint4 raw = *reinterpret_cast<const uint4*>(src + r * ld + col);
      const __half2* h2 = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
      for (int t = 0; t < 4; ++t) {
        const float2 x = __half22float2(h2[t]);
        f[2 * t] = x.x * mul;
        f[2 * t + 1] = x.y * mul;
      }
    }
    float4* d = reinterpret_cast<float4*>(dst + r * sstride + col);
    d[0] = make_float4(f[0], f[1], f[2], f[3]);
    d[1] = make_float4(f[4], f[5], f[6], f[7]);
  }
}

/// grid: (query tiles, n_heads, batch); block: kThreads. Dynamic shared memory: Smem<D>::bytes.
template <int D>
__global__ void __launch_bounds__(kThreads)
    flash_kernel(const __half* __restrict__ q, const __half* __restrict__ k, const __half* __restrict__ v,
                 __half* __restrict__ out, int q_len, int kv_len, int n_heads, int n_kv_heads, bool causal,
                 float scale_log2) {
  constexpr int R = kRowsPerWarp;
  constexpr int DPL = D / 32;  // output dims per lane: 1, 2 or 4
  static_assert(DPL == 1 || DPL == 2 || DPL == 4, "head_dim must be 32, 64 or 128");
  using L = Smem<D>;
  extern __shared__ __align__(16) float smem[];
  float* Qs = smem + L::q;
  float* Ks = smem + L::k;
  float* Vs = smem + L::v;
  float* Ps = smem + L::p;

  // Under a causal mask the last query tiles have the most keys to visit. Blocks are started in
  // blockIdx order, so reversing the tiles starts each head's longest tile first and ends the
  // grid with short ones, which fill the gaps of the last wave instead of prolonging it.
  const int tile = static_cast<int>(gridDim.x - 1 - blockIdx.x);
  const int h = blockIdx.y, b = blockIdx.z;
  const int kvh = h / (n_heads / n_kv_heads);  // grouped-query attention: the head's kv head
  const int i0 = tile * kBr;                   // first query of the tile
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int r0 = warp * R;            // the warp's first row in the tile
  const int offset = kv_len - q_len;  // position of query 0

  const std::size_t q_ld = static_cast<std::size_t>(n_heads) * D;      // halves between queries
  const std::size_t kv_ld = static_cast<std::size_t>(n_kv_heads) * D;  // halves between keys
  load_tile<D>(Qs, D, q + (static_cast<std::size_t>(b) * q_len + i0) * q_ld + static_cast<std::size_t>(h) * D, q_ld,
               kBr, min(kBr, q_len - i0), scale_log2);
  const __half* kb = k + static_cast<std::size_t>(b) * kv_len * kv_ld + static_cast<std::size_t>(kvh) * D;
  const __half* vb = v + static_cast<std::size_t>(b) * kv_len * kv_ld + static_cast<std::size_t>(kvh) * D;

  // Keys past the last position any query of the tile can see are skipped (causal).
  const int last_query = min(i0 + kBr, q_len) - 1;
  const int kv_end = causal ? min(kv_len, offset + last_query + 1) : kv_len;

  float m[R], l[R], o[R][DPL];  // running max (log2 domain), this lane's share of the sum, output
#pragma unroll
  for (int r = 0; r < R; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int t = 0; t < DPL; ++t) o[r][t] = 0.0f;
  }

  for (int j0 = 0; j0 < kv_end; j0 += kBc) {
    __syncthreads();  // every warp is done with the previous K/V tile
    const int n_valid = min(kBc, kv_len - j0);
    load_tile<D>(Ks, L::kKStride, kb + j0 * kv_ld, kv_ld, kBc, n_valid, 1.0f);
    load_tile<D>(Vs, D, vb + j0 * kv_ld, kv_ld, kBc, n_valid, 1.0f);
    __syncthreads();  // the tile (and, the first time, Q) is visible to every warp

    // s[r] = q_r . k_lane for the warp's 8 queries: one float4 of K feeds 8 queries.
    float s[R];
#pragma unroll
    for (int r = 0; r < R; ++r) s[r] = 0.0f;
    const float* kr = Ks + lane * L::kKStride;
#pragma unroll 4
    for (int d = 0; d < D; d += 4) {
      const float4 kk = *reinterpret_cast<const float4*>(kr + d);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const float4 qq = *reinterpret_cast<const float4*>(Qs + (r0 + r) * D + d);  // broadcast
        s[r] = fmaf(qq.x, kk.x, s[r]);
        s[r] = fmaf(qq.y, kk.y, s[r]);
        s[r] = fmaf(qq.z, kk.z, s[r]);
        s[r] = fmaf(qq.w, kk.w, s[r]);
      }
    }

    // Online softmax, one row at a time; every value below is the same in all lanes except p.
    const int j = j0 + lane;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int pos = offset + i0 + r0 + r;
      const bool visible = j < kv_len && (!causal || j <= pos);
      const float x = visible ? s[r] : -INFINITY;
      const float m_new = fmaxf(m[r], warp_max(x));
      // While every key seen so far is masked, m_new is -inf and -inf - -inf would be NaN:
      // subtract 0 instead, which makes p and alpha exactly 0.
      const float ref = m_new == -INFINITY ? 0.0f : m_new;
      const float alpha = exp2f(m[r] - ref);  // rescales what was accumulated so far
      const float p = exp2f(x - ref);
      l[r] = l[r] * alpha + p;
#pragma unroll
      for (int t = 0; t < DPL; ++t) o[r][t] *= alpha;
      m[r] = m_new;
      Ps[(r0 + r) * kBc + lane] = p;
    }
    __syncwarp();  // the warp's rows of P are written (only this warp reads them)

    // o[r][:] += sum_j P[r][j] V[j][lane's dims]: a float4 of P feeds 4 * DPL FMAs per row.
    // Unrolled 2x; fully at D = 32, where ptxas otherwise spills a few values (v13, 72 regs).
    constexpr int kPvUnroll = DPL == 1 ? kBc / 4 : 2;
#pragma unroll kPvUnroll
    for (int jj = 0; jj < kBc; jj += 4) {
      float vv[4][DPL];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const float* vr = Vs + (jj + u) * D + lane * DPL;
        if constexpr (DPL == 4) {
          const float4 x = *reinterpret_cast<const float4*>(vr);
          vv[u][0] = x.x, vv[u][1] = x.y, vv[u][2] = x.z, vv[u][3] = x.w;
        } else if constexpr (DPL == 2) {
          const float2 x = *reinterpret_cast<const float2*>(vr);
          vv[u][0] = x.x, vv[u][1] = x.y;
        } else {
          vv[u][0] = *vr;  // D = 32: one dim per lane, 32 consecutive floats per row (no conflict)
        }
      }
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const float4 p4 = *reinterpret_cast<const float4*>(Ps + (r0 + r) * kBc + jj);  // broadcast
#pragma unroll
        for (int t = 0; t < DPL; ++t) {
          o[r][t] = fmaf(p4.x, vv[0][t], o[r][t]);
          o[r][t] = fmaf(p4.y, vv[1][t], o[r][t]);
          o[r][t] = fmaf(p4.z, vv[2][t], o[r][t]);
          o[r][t] = fmaf(p4.w, vv[3][t], o[r][t]);
        }
      }
    }
    // The next write of Ps comes after the __syncthreads at the top of the loop.
  }

  // out = o / l, rounded to fp16 once. Lanes write consecutive dims: coalesced.
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const float sum = warp_sum(l[r]);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    const int i = i0 + r0 + r;
    if (i >= q_len) continue;  // padding row of the last tile
    __half* dst = out + ((static_cast<std::size_t>(b) * q_len + i) * n_heads + h) * D + lane * DPL;
    if constexpr (DPL == 4) {
      uint2 packed;  // four halves, one 8-byte store
      *reinterpret_cast<__half2*>(&packed.x) = __floats2half2_rn(o[r][0] * inv, o[r][1] * inv);
      *reinterpret_cast<__half2*>(&packed.y) = __floats2half2_rn(o[r][2] * inv, o[r][3] * inv);
      *reinterpret_cast<uint2*>(dst) = packed;
    } else if constexpr (DPL == 2) {
      *reinterpret_cast<__half2*>(dst) = __floats2half2_rn(o[r][0] * inv, o[r][1] * inv);
    } else {
      *dst = __float2half_rn(o[r][0] * inv);  // D = 32: the warp writes the row's 64 bytes
    }
  }
}

template <int D>
void launch(const PrefillAttentionArgs& a, cudaStream_t stream) {
  constexpr std::size_t smem = Smem<D>::bytes;  // 16,896 B (D = 32), 29,184 B (64) or 53,760 B (128)
  // More than 48 KB of dynamic shared memory must be asked for explicitly (per device, so do it
  // on every launch; it is a cheap host call).
  if constexpr (smem > 48 * 1024) {
    CUDA_CHECK(
        cudaFuncSetAttribute(flash_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  }
  const dim3 grid((a.q_len + kBr - 1) / kBr, a.n_heads, a.batch);
  const float scale_log2 = kLog2e / std::sqrt(static_cast<float>(D));
  flash_kernel<D><<<grid, kThreads, smem, stream>>>(a.q, a.k, a.v, a.out, a.q_len, a.kv_len, a.n_heads, a.n_kv_heads,
                                                    a.causal, scale_log2);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace

/// Version 2: tiled FlashAttention-2 on CUDA cores (fp32 math). Needs no scratch.
void attention_prefill_02_tiled_online_softmax(const PrefillAttentionArgs& a, cudaStream_t stream) {
  validate(a);
  if (a.head_dim == 32) {
    launch<32>(a, stream);
  } else if (a.head_dim == 64) {
    launch<64>(a, stream);
  } else {
    launch<128>(a, stream);
  }
}

}  // namespace llm::cuda
