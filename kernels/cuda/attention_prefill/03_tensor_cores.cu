// 03_tensor_cores.cu: 02's algorithm with its two matrix products on tensor cores. Change from
// 02: S = Q K^T and O += P V run as 16x16x16 WMMA tiles (nvcuda::wmma: fp16 operands, fp32
// accumulation) instead of fp32 FMAs; the online softmax between them stays fp32 on CUDA cores.
//
// Why it is faster than 02: an H100's tensor cores do fp16 multiply-adds an order of magnitude
// faster than its CUDA cores do fp32 FMAs (about 990 vs 67 TFLOP/s dense), and attention is two
// matrix products per tile. To feed them, the tiles grow to Br = Bc = 64 (each K/V tile serves 64
// queries: half the K/V traffic of 02), K and V stay fp16 in shared memory (half the bytes), and
// Q's fragments are loaded into registers once and reused for every key tile.
// What it still leaves on the table (FlashAttention-2/3 proper): the score tile and the output
// accumulator make a round trip through shared memory every tile (the WMMA API does not say which
// row a fragment element belongs to, so per-row softmax work has to go through memory), loads are
// not overlapped with compute (no cp.async / TMA pipeline), and the mma is the portable WMMA, not
// Hopper's wgmma.
//
// Block: 4 warps; query tile of 64 rows, warp w owns rows 16w .. 16w+15. Per K/V tile of 64 keys:
//   1. all threads copy the fp16 K and V tiles to shared memory (rows past kv_len are zeros)
//   2. each warp: S (16 x 64, fp32) = Q_w K^T on tensor cores, stored to shared memory
//   3. each warp, two lanes per row: mask, scale, row max, P = exp2(S - m) rounded to fp16 into
//      shared memory, row sum l from the rounded P, rescale the row of O (fp32, shared) by
//      e^(m_old - m_new)
//   4. each warp: O_w (16 x head_dim, fp32) += P_w V on tensor cores, loaded from and stored back
//      to shared memory
// At the end each pair of lanes writes its row O / l as fp16.
//
// Run it:
//   build/kernels/kernel_harness check attention_prefill --version 3
//   build/kernels/kernel_harness bench attention_prefill --version 3
#include <cuda_fp16.h>
#include <mma.h>

#include <cmath>
#include <cstdint>

#include "kernels/cuda/attention_prefill/attention_prefill.cuh"
#include "kernels/cuda/check.cuh"

namespace llm::cuda {

namespace {

using namespace nvcuda;

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kM = 16;            // WMMA tile: 16 x 16 x 16
constexpr int kBr = kWarps * kM;  // 64 queries per block, 16 per warp
constexpr int kBc = 64;           // keys per K/V tile
constexpr float kLog2e = 1.4426950408889634f;

constexpr int round_up(int x, int to) {
  return (x + to - 1) / to * to;
}

/// Shared memory layout in bytes. Row strides are padded (by 16 bytes for fp16, 16 bytes for
/// fp32) so that the rows a WMMA load touches start in different banks; WMMA needs strides that
/// are multiples of 16 bytes and tile pointers aligned to 32 bytes, which these satisfy.
template <int D>
struct Smem {
  static constexpr int kQkvStride = D + 8;  // halves: Q, K, V tiles
  static constexpr int kSStride = kBc + 4;  // floats: S tile
  static constexpr int kPStride = kBc + 8;  // halves: P tile
  static constexpr int kOStride = D + 4;    // floats: O accumulator
  static constexpr int q = 0;
  static constexpr int k = q + round_up(kBr * kQkvStride * 2, 128);
  static constexpr int v = k + round_up(kBc * kQkvStride * 2, 128);
  static constexpr int s = v + round_up(kBc * kQkvStride * 2, 128);
  static constexpr int p = s + round_up(kBr * kSStride * 4, 128);
  static constexpr int o = p + round_up(kBr * kPStride * 2, 128);
  static constexpr int bytes = o + round_up(kBr * kOStride * 4, 128);
};
static_assert(Smem<32>::bytes == 51200, "layout of head_dim 32 changed: update the comment in launch()");
static_assert(Smem<64>::bytes == 71680, "layout of head_dim 64 changed: update the comment in launch()");
static_assert(Smem<128>::bytes == 112640, "layout of head_dim 128 changed: update the comment in launch()");

/// Copies `rows` rows of D halves (row r at src + r * ld) into shared memory (row stride
/// `sstride` halves) in 16-byte chunks; rows >= n_valid become zeros.
template <int D>
__device__ __forceinline__ void load_tile(__half* dst, int sstride, const __half* src, std::size_t ld, int rows,
                                          int n_valid) {
  constexpr int kChunks = D / 8;
  for (int c = threadIdx.x; c < rows * kChunks; c += kThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    uint4 x = make_uint4(0u, 0u, 0u, 0u);
    if (r < n_valid) x = *reinterpret_cast<const uint4*>(src + r * ld + col);
    *reinterpret_cast<uint4*>(dst + r * sstride + col) = x;
  }
}

/// grid: (query tiles, n_heads, batch); block: kThreads. Dynamic shared memory: Smem<D>::bytes.
template <int D>
__global__ void __launch_bounds__(kThreads)
    flash_wmma_kernel(const __half* __restrict__ q, const __half* __restrict__ k, const __half* __restrict__ v,
                      __half* __restrict__ out, int q_len, int kv_len, int n_heads, int n_kv_heads, bool causal,
                      float scale_log2) {
  using L = Smem<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  __half* Qs = reinterpret_cast<__half*>(smem + L::q);
  __half* Ks = reinterpret_cast<__half*>(smem + L::k);
  __half* Vs = reinterpret_cast<__half*>(smem + L::v);
  float* Ss = reinterpret_cast<float*>(smem + L::s);
  __half* Ps = reinterpret_cast<__half*>(smem + L::p);
  float* Os = reinterpret_cast<float*>(smem + L::o);

  const int tile = static_cast<int>(gridDim.x - 1 - blockIdx.x);  // longest causal tiles first (see 02)
  const int h = blockIdx.y, b = blockIdx.z;
  const int kvh = h / (n_heads / n_kv_heads);
  const int i0 = tile * kBr;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int offset = kv_len - q_len;  // position of query 0

  const std::size_t q_ld = static_cast<std::size_t>(n_heads) * D;
  const std::size_t kv_ld = static_cast<std::size_t>(n_kv_heads) * D;
  load_tile<D>(Qs, L::kQkvStride,
               q + (static_cast<std::size_t>(b) * q_len + i0) * q_ld + static_cast<std::size_t>(h) * D, q_ld, kBr,
               min(kBr, q_len - i0));
  const __half* kb = k + static_cast<std::size_t>(b) * kv_len * kv_ld + static_cast<std::size_t>(kvh) * D;
  const __half* vb = v + static_cast<std::size_t>(b) * kv_len * kv_ld + static_cast<std::size_t>(kvh) * D;
  // O starts at zero (it is rescaled by 0 on the first tile, and 0 * garbage could be NaN).
  for (int x = threadIdx.x; x < kBr * L::kOStride; x += kThreads) Os[x] = 0.0f;
  __syncthreads();

  // The warp's 16 query rows as WMMA A fragments, kept in registers for every key tile.
  wmma::fragment<wmma::matrix_a, kM, kM, kM, __half, wmma::row_major> qf[D / kM];
#pragma unroll
  for (int kd = 0; kd < D / kM; ++kd)
    wmma::load_matrix_sync(qf[kd], Qs + warp * kM * L::kQkvStride + kd * kM, L::kQkvStride);

  // Softmax bookkeeping: lanes 2r and 2r+1 share row r of the warp's 16; `side` (0 or 1) picks
  // the even or odd columns of S and alternate 16-float chunks of the row of O.
  const int row = warp * kM + lane / 2;  // row in the block's tile
  const int side = lane % 2;
  const int pos = offset + i0 + row;  // the row's query position
  float m = -INFINITY, l = 0.0f;      // running max (log2 domain) and sum, same in both lanes

  const int last_query = min(i0 + kBr, q_len) - 1;
  const int kv_end = causal ? min(kv_len, offset + last_query + 1) : kv_len;

  for (int j0 = 0; j0 < kv_end; j0 += kBc) {
    __syncthreads();  // every warp is done with the previous K/V tile
    const int n_valid = min(kBc, kv_len - j0);
    load_tile<D>(Ks, L::kQkvStride, kb + j0 * kv_ld, kv_ld, kBc, n_valid);
    load_tile<D>(Vs, L::kQkvStride, vb + j0 * kv_ld, kv_ld, kBc, n_valid);
    __syncthreads();

    // 2. S_w = Q_w K^T. K is stored [key][dim], which is K^T in column-major order: a col_major
    //    B fragment reads it directly.
    {
      wmma::fragment<wmma::accumulator, kM, kM, kM, float> sf[kBc / kM];
#pragma unroll
      for (int n = 0; n < kBc / kM; ++n) wmma::fill_fragment(sf[n], 0.0f);
#pragma unroll
      for (int kd = 0; kd < D / kM; ++kd) {
#pragma unroll
        for (int n = 0; n < kBc / kM; ++n) {
          wmma::fragment<wmma::matrix_b, kM, kM, kM, __half, wmma::col_major> kf;
          wmma::load_matrix_sync(kf, Ks + n * kM * L::kQkvStride + kd * kM, L::kQkvStride);
          wmma::mma_sync(sf[n], qf[kd], kf, sf[n]);
        }
      }
#pragma unroll
      for (int n = 0; n < kBc / kM; ++n) {
        wmma::store_matrix_sync(Ss + warp * kM * L::kSStride + n * kM, sf[n], L::kSStride, wmma::mem_row_major);
      }
    }
    __syncwarp();  // the warp's S rows are in shared memory

    // 3. Online softmax on row `row`, columns side, side + 2, ... (32 of the 64).
    {
      float x[kBc / 2];
      float tile_max = -INFINITY;
#pragma unroll
      for (int t = 0; t < kBc / 2; ++t) {
        const int c = 2 * t + side, j = j0 + c;
        const bool visible = j < kv_len && (!causal || j <= pos);
        x[t] = visible ? Ss[row * L::kSStride + c] * scale_log2 : -INFINITY;
        tile_max = fmaxf(tile_max, x[t]);
      }
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));  // the other half of the row
      const float m_new = fmaxf(m, tile_max);
      // All keys so far masked (cannot happen for real rows): subtract 0, not -inf, so no NaN.
      const float ref = m_new == -INFINITY ? 0.0f : m_new;
      const float alpha = exp2f(m - ref);
      float sum = 0.0f;
#pragma unroll
      for (int t = 0; t < kBc / 2; ++t) {
        const __half p = __float2half_rn(exp2f(x[t] - ref));
        Ps[row * L::kPStride + 2 * t + side] = p;
        sum += __half2float(p);  // sum what PV will actually use: the rounded P
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      l = l * alpha + sum;
      m = m_new;
      // Rescale O's row. The two lanes take alternate 16-float chunks (at D = 32, one each): with
      // the row stride of D + 4 floats, the 8 lanes of a float4 phase (4 rows x 2 sides) then hit
      // 8 distinct 4-bank groups.
      float* orow = Os + row * L::kOStride;
#pragma unroll
      for (int c = 16 * side; c < D; c += 32) {
#pragma unroll
        for (int u = 0; u < 16; u += 4) {
          float4 o4 = *reinterpret_cast<float4*>(orow + c + u);
          o4.x *= alpha, o4.y *= alpha, o4.z *= alpha, o4.w *= alpha;
          *reinterpret_cast<float4*>(orow + c + u) = o4;
        }
      }
    }
    __syncwarp();  // P and the rescaled O rows are in shared memory

    // 4. O_w += P_w V, one 16-column block of O at a time (V is [key][dim]: row_major B).
    {
      wmma::fragment<wmma::matrix_a, kM, kM, kM, __half, wmma::row_major> pf[kBc / kM];
#pragma unroll
      for (int kk = 0; kk < kBc / kM; ++kk)
        wmma::load_matrix_sync(pf[kk], Ps + warp * kM * L::kPStride + kk * kM, L::kPStride);
#pragma unroll 2
      for (int nb = 0; nb < D / kM; ++nb) {
        float* otile = Os + warp * kM * L::kOStride + nb * kM;
        wmma::fragment<wmma::accumulator, kM, kM, kM, float> of;
        wmma::load_matrix_sync(of, otile, L::kOStride, wmma::mem_row_major);
#pragma unroll
        for (int kk = 0; kk < kBc / kM; ++kk) {
          wmma::fragment<wmma::matrix_b, kM, kM, kM, __half, wmma::row_major> vf;
          wmma::load_matrix_sync(vf, Vs + kk * kM * L::kQkvStride + nb * kM, L::kQkvStride);
          wmma::mma_sync(of, pf[kk], vf, of);
        }
        wmma::store_matrix_sync(otile, of, L::kOStride, wmma::mem_row_major);
      }
    }
    // The next tile's S and O writes come after the __syncthreads at the top of the loop.
  }
  __syncwarp();  // the last O stores are visible to both lanes of each row

  // out = O / l in fp16; each lane of the pair writes half of the row, 8 halves per store.
  const int i = i0 + row;
  if (i < q_len) {
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    const float* orow = Os + row * L::kOStride + side * (D / 2);
    __half* dst = out + ((static_cast<std::size_t>(b) * q_len + i) * n_heads + h) * D + side * (D / 2);
#pragma unroll
    for (int c = 0; c < D / 2; c += 8) {
      uint4 packed;
      *reinterpret_cast<__half2*>(&packed.x) = __floats2half2_rn(orow[c + 0] * inv, orow[c + 1] * inv);
      *reinterpret_cast<__half2*>(&packed.y) = __floats2half2_rn(orow[c + 2] * inv, orow[c + 3] * inv);
      *reinterpret_cast<__half2*>(&packed.z) = __floats2half2_rn(orow[c + 4] * inv, orow[c + 5] * inv);
      *reinterpret_cast<__half2*>(&packed.w) = __floats2half2_rn(orow[c + 6] * inv, orow[c + 7] * inv);
      *reinterpret_cast<uint4*>(dst + c) = packed;
    }
  }
}

template <int D>
void launch(const PrefillAttentionArgs& a, cudaStream_t stream) {
  // 51,200 B (D = 32), 71,680 B (64) or 112,640 B (128): above the default 48 KB, so ask for it
  // (per device, hence on every launch; a cheap host call). Shared memory lets two blocks fit on
  // an SM at D = 128, three at 64 and four at 32.
  constexpr int smem = Smem<D>::bytes;
  CUDA_CHECK(cudaFuncSetAttribute(flash_wmma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const dim3 grid((a.q_len + kBr - 1) / kBr, a.n_heads, a.batch);
  const float scale_log2 = kLog2e / std::sqrt(static_cast<float>(D));
  flash_wmma_kernel<D><<<grid, kThreads, smem, stream>>>(a.q, a.k, a.v, a.out, a.q_len, a.kv_len, a.n_heads,
                                                         a.n_kv_heads, a.causal, scale_log2);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace

/// Version 3: tiled FlashAttention-2 with QK^T and PV on tensor cores (WMMA, fp16 operands,
/// fp32 accumulation and softmax; P rounded to fp16 before PV). Needs no scratch.
void attention_prefill_03_tensor_cores(const PrefillAttentionArgs& a, cudaStream_t stream) {
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
