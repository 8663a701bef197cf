// 01_one_block_per_head.cu: decode attention, version 1: the baseline.
//
// One thread block (4 warps) per (sequence, query head) walks every key of its sequence through
// the block table. A warp takes one key at a time (warp w: keys w, w+4, w+8, ...); its 32 lanes
// split head_dim (4 values each for head_dim 128, 2 for 64, 1 for 32), so the dot product q.k
// is 32 partial sums and a warp-shuffle reduction. Each warp keeps an online softmax (running
// max m, running sum l, unnormalised output o: the FlashAttention recurrence), so no score is
// stored and any context length works; at the end the 4 warps merge their (m, l, o) through
// shared memory and the block writes one fp16 row.
//
// Why it is slow (what 02_split_kv.cu fixes):
//   - batch * n_heads blocks: at batch 1 that is 32 blocks for a 132-SM GPU, each walking 32k
//     keys one after another, so most of the GPU idles;
//   - every query head of a group reads the same K/V again (4x the bytes for Llama-8B, served by
//     L2 at best);
//   - 8-byte loads (4 at head_dim 64, 2 at 32), one key per warp per iteration and a full
//     5-step shuffle reduction per key: few bytes in flight per warp.
//
// Run: build/kernels/kernel_harness check attention_decode --version 1
//      build/kernels/kernel_harness bench attention_decode --version 1
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "kernels/cuda/attention_decode/attention_decode.cuh"
#include "kernels/cuda/check.cuh"

namespace llm::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr float kLog2e = 1.4426950408889634f;

void require(bool ok, const char* field, long long value, const char* rule) {
  if (!ok) {
    throw std::invalid_argument(std::string("DecodeAttentionArgs: ") + field + " = " + std::to_string(value) + ": " +
                                rule);
  }
}

/// Null pointers and 16-byte alignment (cudaMalloc gives 256; 02 reads q and K/V with 16-byte loads).
void require_pointer(const void* p, const char* field, bool may_be_null = false) {
  if (p == nullptr && !may_be_null)
    throw std::invalid_argument(std::string("DecodeAttentionArgs: ") + field + " is null");
  if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0) {
    char addr[32];
    std::snprintf(addr, sizeof(addr), "%p", p);
    throw std::invalid_argument(std::string("DecodeAttentionArgs: ") + field + " = " + addr +
                                " is not 16-byte aligned");
  }
}

/// Loads E consecutive fp16 values (E = 1, 2 or 4: a 2-, 4- or 8-byte load) as floats.
template <int E>
__device__ __forceinline__ void load_halves(const __half* p, float (&f)[E]) {
  static_assert(E == 1 || E == 2 || E == 4, "a lane holds 1, 2 or 4 values");
  if constexpr (E == 1) {
    f[0] = __half2float(*p);
  } else if constexpr (E == 4) {
    const uint2 raw = *reinterpret_cast<const uint2*>(p);
    const float2 a = __half22float2(*reinterpret_cast<const __half2*>(&raw.x));
    const float2 b = __half22float2(*reinterpret_cast<const __half2*>(&raw.y));
    f[0] = a.x, f[1] = a.y, f[2] = b.x, f[3] = b.y;
  } else {
    const float2 a = __half22float2(*reinterpret_cast<const __half2*>(p));
    f[0] = a.x, f[1] = a.y;
  }
}

/// grid (n_heads, batch), block kThreads. Scores are kept in log2 units (q is pre-multiplied by
/// log2(e)/sqrt(head_dim)) so that every exponential is one exp2f.
template <int D>
__global__ void __launch_bounds__(kThreads) one_block_per_head_kernel(DecodeAttentionArgs a, float scale_log2) {
  constexpr int E = D / 32;  // head_dim values per lane
  const int h = blockIdx.x, b = blockIdx.y;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int kvh = h / (a.n_heads / a.n_kv_heads);

  float q[E];
  load_halves<E>(a.q + (static_cast<std::size_t>(b) * a.n_heads + h) * D + lane * E, q);
#pragma unroll
  for (int j = 0; j < E; ++j) q[j] *= scale_log2;

  // seq_lens is device data the host cannot check: never read past the block table's row.
  const int seq_len = min(a.seq_lens[b], a.max_blocks_per_seq * a.block_size);
  const int* table = a.block_table + static_cast<std::size_t>(b) * a.max_blocks_per_seq;
  const std::size_t pos_stride = static_cast<std::size_t>(a.n_kv_heads) * D;  // halves between positions
  const std::size_t head_off = static_cast<std::size_t>(kvh) * D + lane * E;

  float m = -INFINITY, l = 0.0f, o[E] = {};
  for (int t = warp; t < seq_len; t += kWarps) {
    const int blk = t / a.block_size;
    const std::size_t off =
        (static_cast<std::size_t>(table[blk]) * a.block_size + (t - blk * a.block_size)) * pos_stride + head_off;
    float k[E], v[E];
    load_halves<E>(a.k_cache + off, k);
    load_halves<E>(a.v_cache + off, v);
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < E; ++j) s = fmaf(q[j], k[j], s);
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) s += __shfl_xor_sync(0xffffffffu, s, offset);
    // Online softmax: raise the max if needed, rescale what was summed under the old one.
    const float m_new = fmaxf(m, s);
    const float alpha = exp2f(m - m_new);  // first key: exp2(-inf) = 0
    const float p = exp2f(s - m_new);
    l = l * alpha + p;
#pragma unroll
    for (int j = 0; j < E; ++j) o[j] = fmaf(p, v[j], o[j] * alpha);
  }

  // Merge the warps: M = max m_w, L = sum l_w 2^(m_w - M), O = sum o_w 2^(m_w - M). A warp that
  // saw no key (seq_len < 4) has l = 0 and is skipped, so -inf - -inf never happens.
  __shared__ float sm_m[kWarps], sm_l[kWarps];
  __shared__ float sm_o[kWarps][D];
  if (lane == 0) sm_m[warp] = m, sm_l[warp] = l;
#pragma unroll
  for (int j = 0; j < E; ++j) sm_o[warp][lane * E + j] = o[j];
  __syncthreads();
  for (int d = threadIdx.x; d < D; d += kThreads) {
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w)
      if (sm_l[w] > 0.0f) M = fmaxf(M, sm_m[w]);
    float L = 0.0f, O = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      if (sm_l[w] > 0.0f) {
        const float e = exp2f(sm_m[w] - M);
        L = fmaf(sm_l[w], e, L);
        O = fmaf(sm_o[w][d], e, O);
      }
    }
    // seq_len 0 (not allowed, but device data) gives zeros rather than 0/0.
    a.out[(static_cast<std::size_t>(b) * a.n_heads + h) * D + d] = __float2half_rn(L > 0.0f ? O / L : 0.0f);
  }
}

}  // namespace

void validate(const DecodeAttentionArgs& a) {
  require_pointer(a.q, "q");
  require_pointer(a.out, "out");
  require_pointer(a.k_cache, "k_cache");
  require_pointer(a.v_cache, "v_cache");
  require_pointer(a.block_table, "block_table");
  require_pointer(a.seq_lens, "seq_lens");
  require_pointer(a.workspace, "workspace", /*may_be_null=*/true);  // 02 checks it is there when needed
  require(a.batch >= 1 && a.batch <= 65535, "batch", a.batch, "must be in [1, 65535] (a grid dimension)");
  require(a.n_heads >= 1 && a.n_heads <= 65535, "n_heads", a.n_heads, "must be in [1, 65535] (a grid dimension)");
  require(a.n_kv_heads >= 1, "n_kv_heads", a.n_kv_heads, "must be >= 1");
  require(a.n_heads % a.n_kv_heads == 0, "n_heads", a.n_heads,
          ("must be a multiple of n_kv_heads = " + std::to_string(a.n_kv_heads)).c_str());
  require(a.head_dim == 32 || a.head_dim == 64 || a.head_dim == 128, "head_dim", a.head_dim, "must be 32, 64 or 128");
  require(a.block_size >= 1, "block_size", a.block_size, "must be >= 1");
  require(a.num_blocks >= 1, "num_blocks", a.num_blocks, "must be >= 1");
  require(a.max_blocks_per_seq >= 1, "max_blocks_per_seq", a.max_blocks_per_seq, "must be >= 1");
  require(static_cast<long long>(a.max_blocks_per_seq) * a.block_size <= 0x7fffffffLL, "max_blocks_per_seq",
          a.max_blocks_per_seq, "times block_size must fit in int");
  require(a.max_seq_len >= 1 &&
              static_cast<long long>(a.max_seq_len) <= static_cast<long long>(a.max_blocks_per_seq) * a.block_size,
          "max_seq_len", a.max_seq_len, "must be in [1, max_blocks_per_seq * block_size]");
  require(a.num_splits >= 0, "num_splits", a.num_splits, "must be >= 0 (0: automatic)");
}

/// Version 1: one block per (sequence, query head), an online softmax per warp, warps merged in
/// shared memory. Needs no workspace (ignores num_splits and workspace).
void attention_decode_01_one_block_per_head(const DecodeAttentionArgs& a, cudaStream_t stream) {
  validate(a);
  const dim3 grid(a.n_heads, a.batch);
  const float scale_log2 = kLog2e / sqrtf(static_cast<float>(a.head_dim));
  if (a.head_dim == 128)
    one_block_per_head_kernel<128><<<grid, kThreads, 0, stream>>>(a, scale_log2);
  else if (a.head_dim == 64)
    one_block_per_head_kernel<64><<<grid, kThreads, 0, stream>>>(a, scale_log2);
  else
    one_block_per_head_kernel<32><<<grid, kThreads, 0, stream>>>(a, scale_log2);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::cuda
