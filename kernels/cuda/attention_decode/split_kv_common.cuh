// split_kv_common.cuh: what the split-KV decode kernels (02_split_kv.cu over fp16, 03_split_kv_quant.cu
// over int8/FP8 codes) share; only their loads and the place of the scales differ.
//   - the launch geometry derived from DecodeAttentionArgs (query heads per block, splits, keys per
//     split, the workspace's two parts);
//   - the per-chunk online-softmax update and the end of a split (the lanes' and warps' partial
//     results merged, then the split's (m, l, o) written, or the output itself with one split);
//   - the merge kernel: split s of (sequence b, head h) left m_s (max score, log2 units), l_s (sum of
//     2^(score - m_s)) and o_s (sum of 2^(score - m_s) v, unnormalised); the merge computes
//     m = max m_s, l = sum l_s 2^(m_s - m), out = sum o_s 2^(m_s - m) / l, rounded to fp16. Splits
//     with l = 0 (no keys) are skipped, so -inf - -inf never happens.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "kernels/cuda/attention_decode/attention_decode.cuh"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/vector_loads.cuh"

namespace llm::cuda {

// An unnamed namespace: each .cu file that includes this gets its own copy of the kernels (no
// relocatable device code needed).
namespace split_kv {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr float kLog2e = 1.4426950408889634f;
/// Query heads one block serves at most; a larger group (n_heads / n_kv_heads > 8) is cut into
/// chunks of 8, each its own block (K/V then read once per chunk).
constexpr int kMaxGroup = 8;

int ceil_div(int a, int b) {
  return (a + b - 1) / b;
}

/// Query heads per block: the smallest of 1, 2, 4, 8 that holds the group (or 8).
int group_tile(int group) {
  int g = 1;
  while (g < group && g < kMaxGroup) g *= 2;
  return g;
}

/// What every split-KV kernel gets besides its cache (all resolved on the host); a version's kernel
/// parameters derive from it and add their cache pointers.
struct Shape {
  const __half* q = nullptr;
  __half* out = nullptr;
  const int* block_table = nullptr;
  const int* seq_lens = nullptr;
  float* o_part = nullptr;  // [batch, n_heads, splits, head_dim]: unnormalised outputs of the splits
  float* ml = nullptr;      // [batch, n_heads, splits, 2]: (m, l) of the splits, m in log2 units
  int n_heads = 1;
  int n_kv_heads = 1;
  int group = 1;        // n_heads / n_kv_heads
  int gmax = 1;         // query heads per block (group_tile)
  int head_chunks = 1;  // blocks per kv head: ceil(group / gmax)
  int block_size = 1;
  int block_shift = -1;  // log2(block_size) when it is a power of two, else -1 (then divide)
  int max_blocks_per_seq = 1;
  int splits = 1;
  int split_len = 1;     // keys per split: ceil(max_seq_len / splits); the last split takes the rest
  float scale_log2 = 0;  // log2(e) / sqrt(head_dim): scores in log2 units, every exponential an exp2f
  dim3 grid;             // (splits, n_kv_heads * head_chunks, batch)
};

/// The shape of a launch with `splits` splits (decode_num_splits). Throws std::invalid_argument,
/// naming `version`, when several splits have no workspace.
Shape split_shape(const DecodeAttentionArgs& a, int splits, const char* version) {
  if (splits > 1 && a.workspace == nullptr) {
    throw std::invalid_argument(std::string(version) + ": workspace is null; " + std::to_string(splits) +
                                " splits need decode_workspace_bytes = " + std::to_string(decode_workspace_bytes(a)) +
                                " bytes");
  }
  Shape g;
  g.q = a.q;
  g.out = a.out;
  g.block_table = a.block_table;
  g.seq_lens = a.seq_lens;
  const std::size_t partials = static_cast<std::size_t>(a.batch) * a.n_heads * splits;
  g.o_part = static_cast<float*>(a.workspace);
  g.ml = g.o_part == nullptr ? nullptr : g.o_part + partials * a.head_dim;
  g.n_heads = a.n_heads;
  g.n_kv_heads = a.n_kv_heads;
  g.group = a.n_heads / a.n_kv_heads;
  g.gmax = group_tile(g.group);
  g.head_chunks = ceil_div(g.group, g.gmax);
  g.block_size = a.block_size;
  if ((a.block_size & (a.block_size - 1)) == 0) {
    g.block_shift = 0;
    while ((1 << g.block_shift) < a.block_size) ++g.block_shift;
  }
  g.max_blocks_per_seq = a.max_blocks_per_seq;
  g.splits = splits;
  g.split_len = ceil_div(a.max_seq_len, splits);
  g.scale_log2 = kLog2e / sqrtf(static_cast<float>(a.head_dim));
  g.grid = dim3(splits, a.n_kv_heads * g.head_chunks, a.batch);
  return g;
}

/// Where a block of a split-KV kernel works: grid (split, kv head * head chunk, sequence).
struct Place {
  int split, kvh, b;
  int h0;      // its first query head
  int ng;      // its query heads (block-uniform, <= GMAX)
  int k0, k1;  // its keys [k0, k1)
};

template <int GMAX>
__device__ __forceinline__ Place place_of_block(const Shape& p) {
  Place w;
  w.split = blockIdx.x;
  w.kvh = blockIdx.y / p.head_chunks;
  const int chunk_of_group = blockIdx.y % p.head_chunks;
  w.b = blockIdx.z;
  w.h0 = w.kvh * p.group + chunk_of_group * GMAX;
  w.ng = min(GMAX, p.group - chunk_of_group * GMAX);
  // seq_lens is device data: clamp to the block table's row.
  const int seq_len = min(p.seq_lens[w.b], p.max_blocks_per_seq * p.block_size);
  w.k0 = w.split * p.split_len;
  w.k1 = w.split == p.splits - 1 ? seq_len : min(w.k0 + p.split_len, seq_len);
  return w;
}

/// A lane's start: its 8 values (sub * 8 ..) of each query head, pre-scaled by scale_log2 (one
/// 16-byte load each), and an empty running state m = -inf, l = 0, o = 0.
template <int D, int GMAX>
__device__ __forceinline__ void start_split(const Shape& p, const Place& w, int sub, float (&q)[GMAX][8],
                                            float (&m)[GMAX], float (&l)[GMAX], float (&o)[GMAX][8]) {
#pragma unroll
  for (int g = 0; g < GMAX; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; ++j) o[g][j] = 0.0f;
    if (g < w.ng) {
      const uint4 raw =
          __ldg(reinterpret_cast<const uint4*>(p.q + (static_cast<std::size_t>(w.b) * p.n_heads + w.h0 + g) * D) + sub);
      unpack8(raw, q[g]);
#pragma unroll
      for (int j = 0; j < 8; ++j) q[g][j] *= p.scale_log2;
    }
  }
}

/// One online-softmax update per head for a chunk of kSteps keys per lane: s holds the chunk's
/// scores (log2 units; -inf for keys past the split) and becomes the probabilities 2^(s - m_new);
/// m, l and o are rescaled by 2^(m_old - m_new). The chunk's first key is valid, so its max is
/// finite and alpha/p never see -inf - -inf.
template <int GMAX, int kSteps, int kLanesPerKey>
__device__ __forceinline__ void softmax_chunk(float (&s)[kSteps][GMAX], float (&m)[GMAX], float (&l)[GMAX],
                                              float (&o)[GMAX][8], int ng) {
  constexpr unsigned kFull = 0xffffffffu;
#pragma unroll
  for (int g = 0; g < GMAX; ++g) {
    if (g < ng) {
      float mx = s[0][g];
#pragma unroll
      for (int st = 1; st < kSteps; ++st) mx = fmaxf(mx, s[st][g]);
#pragma unroll
      for (int offset = kLanesPerKey; offset < 32; offset *= 2) mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, offset));
      const float m_new = fmaxf(m[g], mx);
      const float alpha = exp2f(m[g] - m_new);  // first chunk: exp2(-inf) = 0
      m[g] = m_new;
      float psum = 0.0f;
#pragma unroll
      for (int st = 0; st < kSteps; ++st) {
        s[st][g] = exp2f(s[st][g] - m_new);  // invalid key: exp2(-inf) = 0
        psum += s[st][g];
      }
      l[g] = fmaf(l[g], alpha, psum);
#pragma unroll
      for (int j = 0; j < 8; ++j) o[g][j] *= alpha;
    }
  }
}

/// The end of a split: l and o summed over the warp's key groups (m is already warp-wide), the 4
/// warps merged through shared memory (a warp with no chunk has l = 0 and is skipped), then this
/// split's (m, l, o) written, or the normalised output when there is one split.
template <int D, int GMAX, int kLanesPerKey>
__device__ __forceinline__ void finish_split(float (&m)[GMAX], float (&l)[GMAX], float (&o)[GMAX][8], int ng, int b,
                                             int h0, int split, int n_heads, int splits, __half* out, float* o_part,
                                             float* ml) {
  constexpr unsigned kFull = 0xffffffffu;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int kg = lane / kLanesPerKey, sub = lane % kLanesPerKey;
#pragma unroll
  for (int g = 0; g < GMAX; ++g) {
    if (g < ng) {
#pragma unroll
      for (int offset = kLanesPerKey; offset < 32; offset *= 2) {
        l[g] += __shfl_xor_sync(kFull, l[g], offset);
#pragma unroll
        for (int j = 0; j < 8; ++j) o[g][j] += __shfl_xor_sync(kFull, o[g][j], offset);
      }
    }
  }

  __shared__ float sm_m[kWarps][GMAX], sm_l[kWarps][GMAX];
  __shared__ __align__(16) float sm_o[kWarps][GMAX][D];
#pragma unroll
  for (int g = 0; g < GMAX; ++g) {
    if (g < ng) {
      if (kg == 0) {
        float4* dst = reinterpret_cast<float4*>(&sm_o[warp][g][sub * 8]);
        dst[0] = make_float4(o[g][0], o[g][1], o[g][2], o[g][3]);
        dst[1] = make_float4(o[g][4], o[g][5], o[g][6], o[g][7]);
      }
      if (lane == 0) sm_m[warp][g] = m[g], sm_l[warp][g] = l[g];
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < ng * D; i += kThreads) {
    const int g = i / D, d = i % D;
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w)
      if (sm_l[w][g] > 0.0f) M = fmaxf(M, sm_m[w][g]);
    float L = 0.0f, O = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      if (sm_l[w][g] > 0.0f) {
        const float e = exp2f(sm_m[w][g] - M);
        L = fmaf(sm_l[w][g], e, L);
        O = fmaf(sm_o[w][g][d], e, O);
      }
    }
    const std::size_t head_row = static_cast<std::size_t>(b) * n_heads + h0 + g;
    if (splits == 1) {
      out[head_row * D + d] = __float2half_rn(L > 0.0f ? O / L : 0.0f);
    } else {
      const std::size_t part = head_row * splits + split;
      o_part[part * D + d] = O;  // 0 for an empty split
      if (d == 0) ml[part * 2] = M, ml[part * 2 + 1] = L;
    }
  }
}

/// Max or sum over the block (kThreads threads); every thread gets the result. `buf` holds
/// kWarps floats; the leading __syncthreads lets a caller reuse it for a second reduction.
template <bool kMax>
__device__ float block_reduce(float v, float* buf) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other = __shfl_xor_sync(0xffffffffu, v, offset);
    v = kMax ? fmaxf(v, other) : v + other;
  }
  __syncthreads();
  if (threadIdx.x % 32 == 0) buf[threadIdx.x / 32] = v;
  __syncthreads();
  v = buf[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) v = kMax ? fmaxf(v, buf[w]) : v + buf[w];
  return v;
}

/// grid (n_heads, batch), block kThreads: merges the splits of one (sequence, head). Thread d
/// handles head_dim value d (coalesced reads of o_part); every thread recomputes the split
/// weights 2^(m_s - m) (a few hundred exp2f at most), which needs no shared array per split.
__global__ void __launch_bounds__(kThreads)
    merge_splits_kernel(const float* o_part, const float* ml, __half* out, int n_heads, int splits, int head_dim) {
  __shared__ float buf[kWarps];
  const std::size_t head_row = static_cast<std::size_t>(blockIdx.y) * n_heads + blockIdx.x;
  const float* ml_row = ml + head_row * splits * 2;
  const float* o_row = o_part + head_row * splits * head_dim;

  float mx = -INFINITY;
  for (int s = threadIdx.x; s < splits; s += kThreads)
    if (ml_row[2 * s + 1] > 0.0f) mx = fmaxf(mx, ml_row[2 * s]);
  const float M = block_reduce<true>(mx, buf);

  for (int d = threadIdx.x; d < head_dim; d += kThreads) {
    float L = 0.0f, O = 0.0f;
#pragma unroll 4
    for (int s = 0; s < splits; ++s) {
      const float ls = ml_row[2 * s + 1];
      if (ls > 0.0f) {  // empty splits (l = 0, m = -inf) are skipped
        const float e = exp2f(ml_row[2 * s] - M);
        L = fmaf(ls, e, L);
        O = fmaf(o_row[static_cast<std::size_t>(s) * head_dim + d], e, O);
      }
    }
    out[head_row * head_dim + d] = __float2half_rn(L > 0.0f ? O / L : 0.0f);
  }
}

/// The merge of the splits, when there is more than one.
void merge_splits(const Shape& g, int batch, int head_dim, cudaStream_t stream) {
  if (g.splits <= 1) return;
  merge_splits_kernel<<<dim3(g.n_heads, batch), kThreads, 0, stream>>>(g.o_part, g.ml, g.out, g.n_heads, g.splits,
                                                                       head_dim);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace
}  // namespace split_kv

}  // namespace llm::cuda
