// 03_split_kv_quant.cu: decode attention, version 3: 02's flash-decoding over a KV cache stored as
// 1-byte codes (int8, or FP8 E4M3) with an fp32 scale per (token, KV head): stage 05's
// --kv-cache int8|fp8, laid out as the CPU twin's QuantPagedKvView (kernels/cpu/attention.h).
//
// What changes against 02_split_kv.cu, and why it should be faster:
//   1. Half the bytes: decode attention reads every K and V of the sequence once per step, so at
//      long contexts its time is the KV bytes over the bandwidth. A code is 1 byte instead of 2;
//      the scales add 4 / head_dim bytes per element (3% at 128).
//   2. The same lane layout as 02 (a lane holds 8 consecutive head_dim values of one key, head_dim
//      / 8 lanes per key), so q and o stay 8 floats per lane and head and the register budget is
//      02's: each lane now loads 8 bytes (one uint2; a warp instruction still reads 256 contiguous
//      bytes, whole sectors) plus its key's scale (the lanes of a key read the same 4 bytes: one
//      broadcast).
//   3. The scales stay out of the inner loops: a key's score is k_scale * sum q_i c_i (one multiply
//      after the dot), and its value enters as (p * v_scale) * c (one multiply per key and head);
//      l sums p alone. Codes become floats exactly: int8 by I2F, E4M3 by Hopper's cvt (two codes
//      to an fp16 pair per instruction, cuda_fp8.h), then fp16 -> fp32.
//   The split count and workspace are 02's (decode_num_splits, decode_workspace_bytes), and so is
//   the merge kernel (split_merge.cuh).
//
// Registers per thread (nvcc 13.0, sm_90, -Xptxas -v), by query heads per block 1/2/4/8, the same
// for head_dim 32, 64, 128: int8 72 117 161 209, FP8 72 112 153 209 (02: 3 blocks of 128 threads
// per SM at 4 heads, Llama-8B's group); no spills.
//
// Run: build/kernels/kernel_harness check attention_decode_quant
//      build/kernels/kernel_harness bench attention_decode_quant
#include <cuda_fp8.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cuda/attention_decode/attention_decode.cuh"
#include "kernels/cuda/attention_decode/split_merge.cuh"
#include "kernels/cuda/check.cuh"

namespace llm::cuda {

namespace {

constexpr int kWarps = kMergeWarps;
constexpr int kThreads = kWarps * 32;
constexpr float kLog2e = 1.4426950408889634f;

int ceil_div(int a, int b) { return (a + b - 1) / b; }

/// Query heads per block: the smallest of 1, 2, 4, 8 that holds the group (or 8), as in 02.
int group_tile(int group) {
  int g = 1;
  while (g < group && g < 8) g *= 2;
  return g;
}

struct QuantSplitParams {
  const __half* q;
  __half* out;
  const std::uint8_t* k_codes;
  const std::uint8_t* v_codes;
  const float* k_scales;
  const float* v_scales;
  const int* block_table;
  const int* seq_lens;
  float* o_part;  // [batch, n_heads, splits, head_dim]
  float* ml;      // [batch, n_heads, splits, 2]
  int n_heads, n_kv_heads, group, head_chunks;
  int block_size, block_shift, max_blocks_per_seq;
  int splits, split_len;
  float scale_log2;
};

/// The 8 codes of `raw` as floats (exact).
template <KvCode C>
__device__ __forceinline__ void decode8(const uint2& raw, float (&f)[8]) {
  const std::uint32_t words[2] = {raw.x, raw.y};
#pragma unroll
  for (int w = 0; w < 2; ++w) {
    if constexpr (C == KvCode::int8) {
#pragma unroll
      for (int k = 0; k < 4; ++k) f[4 * w + k] = static_cast<float>(static_cast<std::int8_t>(words[w] >> (8 * k)));
    } else {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const __half2_raw r = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(words[w] >> (16 * h)), __NV_E4M3);
        const float2 t = __half22float2(__half2(r));
        f[4 * w + 2 * h] = t.x;
        f[4 * w + 2 * h + 1] = t.y;
      }
    }
  }
}

/// grid (splits, n_kv_heads * head_chunks, batch), block kThreads; lane = kg * kLanesPerKey + sub
/// as in 02: `sub` picks head_dim values sub*8 .. sub*8+7, `kg` the key of a step.
template <KvCode C, int D, int GMAX>
__global__ void __launch_bounds__(kThreads) split_kv_quant_kernel(QuantSplitParams p) {
  static_assert(D == 32 || D == 64 || D == 128, "head_dim must be 32, 64 or 128");
  constexpr int kLanesPerKey = D / 8;
  constexpr int kKeysPerStep = 32 / kLanesPerKey;
  constexpr int kSteps = GMAX >= 8 ? 2 : 4;
  constexpr int kKeysPerChunk = kKeysPerStep * kSteps;
  constexpr unsigned kFull = 0xffffffffu;

  const int split = blockIdx.x;
  const int kvh = blockIdx.y / p.head_chunks, chunk_of_group = blockIdx.y % p.head_chunks;
  const int b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int kg = lane / kLanesPerKey, sub = lane % kLanesPerKey;
  const int h0 = kvh * p.group + chunk_of_group * GMAX;
  const int ng = min(GMAX, p.group - chunk_of_group * GMAX);

  const int seq_len = min(p.seq_lens[b], p.max_blocks_per_seq * p.block_size);
  const int k0 = split * p.split_len;
  const int k1 = split == p.splits - 1 ? seq_len : min(k0 + p.split_len, seq_len);

  float q[GMAX][8];
#pragma unroll
  for (int g = 0; g < GMAX; ++g) {
    if (g < ng) {
      const __half2* qh = reinterpret_cast<const __half2*>(p.q + (static_cast<std::size_t>(b) * p.n_heads + h0 + g) * D) + sub * 4;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float2 t = __half22float2(qh[j]);
        q[g][2 * j] = t.x * p.scale_log2;
        q[g][2 * j + 1] = t.y * p.scale_log2;
      }
    }
  }

  float m[GMAX], l[GMAX], o[GMAX][8];
#pragma unroll
  for (int g = 0; g < GMAX; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; ++j) o[g][j] = 0.0f;
  }

  const int* table = p.block_table + static_cast<std::size_t>(b) * p.max_blocks_per_seq;
  const uint2* k_base = reinterpret_cast<const uint2*>(p.k_codes + static_cast<std::size_t>(kvh) * D) + sub;
  const uint2* v_base = reinterpret_cast<const uint2*>(p.v_codes + static_cast<std::size_t>(kvh) * D) + sub;

  for (int c0 = k0 + warp * kKeysPerChunk; c0 < k1; c0 += kWarps * kKeysPerChunk) {
    // 1. Every load of the chunk before any use: codes (8 bytes per lane) and the key's scales.
    uint2 kr[kSteps], vr[kSteps];
    float ks[kSteps], vs[kSteps];
#pragma unroll
    for (int st = 0; st < kSteps; ++st) {
      const int t = c0 + st * kKeysPerStep + kg;
      kr[st] = vr[st] = make_uint2(0, 0);
      ks[st] = vs[st] = 0.0f;
      if (t < k1) {
        const int blk = p.block_shift >= 0 ? t >> p.block_shift : t / p.block_size;
        const std::size_t slot = static_cast<std::size_t>(table[blk]) * p.block_size + (t - blk * p.block_size);
        const std::size_t row = slot * p.n_kv_heads;  // (slot, kv head 0): the scale index; codes at row * D
        kr[st] = __ldcs(k_base + row * (D / 8));
        vr[st] = __ldcs(v_base + row * (D / 8));
        ks[st] = __ldg(p.k_scales + row + kvh);
        vs[st] = __ldg(p.v_scales + row + kvh);
      }
    }

    // 2. Scores: k_scale * (8 products per lane, summed over the key's lanes).
    float s[kSteps][GMAX];
#pragma unroll
    for (int st = 0; st < kSteps; ++st) {
      float kf[8];
      decode8<C>(kr[st], kf);
      const bool valid = c0 + st * kKeysPerStep + kg < k1;
#pragma unroll
      for (int g = 0; g < GMAX; ++g) {
        if (g < ng) {
          float acc = 0.0f;
#pragma unroll
          for (int j = 0; j < 8; ++j) acc = fmaf(q[g][j], kf[j], acc);
#pragma unroll
          for (int offset = kLanesPerKey / 2; offset > 0; offset /= 2) acc += __shfl_xor_sync(kFull, acc, offset);
          s[st][g] = valid ? acc * ks[st] : -INFINITY;
        }
      }
    }

    // 3. One online-softmax update per head for the chunk (its first key is valid: finite max).
#pragma unroll
    for (int g = 0; g < GMAX; ++g) {
      if (g < ng) {
        float mx = s[0][g];
#pragma unroll
        for (int st = 1; st < kSteps; ++st) mx = fmaxf(mx, s[st][g]);
#pragma unroll
        for (int offset = kLanesPerKey; offset < 32; offset *= 2) mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, offset));
        const float m_new = fmaxf(m[g], mx);
        const float alpha = exp2f(m[g] - m_new);
        m[g] = m_new;
        float psum = 0.0f;
#pragma unroll
        for (int st = 0; st < kSteps; ++st) {
          s[st][g] = exp2f(s[st][g] - m_new);
          psum += s[st][g];
        }
        l[g] = fmaf(l[g], alpha, psum);
#pragma unroll
        for (int j = 0; j < 8; ++j) o[g][j] *= alpha;
      }
    }

    // 4. o += (p * v_scale) * codes: each V code decoded once for every head of the group.
#pragma unroll
    for (int st = 0; st < kSteps; ++st) {
      float vf[8];
      decode8<C>(vr[st], vf);
#pragma unroll
      for (int g = 0; g < GMAX; ++g) {
        if (g < ng) {
          const float pv = s[st][g] * vs[st];
#pragma unroll
          for (int j = 0; j < 8; ++j) o[g][j] = fmaf(pv, vf[j], o[g][j]);
        }
      }
    }
  }

  // Sum l and o over the warp's key groups, then over the 4 warps through shared memory.
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
#pragma unroll
        for (int j = 0; j < 8; ++j) sm_o[warp][g][sub * 8 + j] = o[g][j];
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
    const std::size_t head_row = static_cast<std::size_t>(b) * p.n_heads + h0 + g;
    if (p.splits == 1) {
      p.out[head_row * D + d] = __float2half_rn(L > 0.0f ? O / L : 0.0f);
    } else {
      const std::size_t part = head_row * p.splits + split;
      p.o_part[part * D + d] = O;
      if (d == 0) p.ml[part * 2] = M, p.ml[part * 2 + 1] = L;
    }
  }
}

template <KvCode C, int D>
void launch(const QuantSplitParams& p, int gmax, dim3 grid, cudaStream_t stream) {
  switch (gmax) {
    case 1: split_kv_quant_kernel<C, D, 1><<<grid, kThreads, 0, stream>>>(p); break;
    case 2: split_kv_quant_kernel<C, D, 2><<<grid, kThreads, 0, stream>>>(p); break;
    case 4: split_kv_quant_kernel<C, D, 4><<<grid, kThreads, 0, stream>>>(p); break;
    default: split_kv_quant_kernel<C, D, 8><<<grid, kThreads, 0, stream>>>(p); break;
  }
}

template <KvCode C>
void launch(const QuantSplitParams& p, int head_dim, int gmax, dim3 grid, cudaStream_t stream) {
  if (head_dim == 128)
    launch<C, 128>(p, gmax, grid, stream);
  else if (head_dim == 64)
    launch<C, 64>(p, gmax, grid, stream);
  else
    launch<C, 32>(p, gmax, grid, stream);
}

}  // namespace

const char* kv_code_name(KvCode c) { return c == KvCode::int8 ? "int8" : "fp8_e4m3"; }

void validate(const QuantDecodeAttentionArgs& a) {
  // The shape and the shared pointers as 01/02 check them; the codes stand in for the fp16 cache.
  DecodeAttentionArgs base = a.base;
  base.k_cache = reinterpret_cast<const __half*>(a.k_codes);
  base.v_cache = reinterpret_cast<const __half*>(a.v_codes);
  try {
    validate(base);
  } catch (const std::invalid_argument& e) {
    std::string what = e.what();
    for (const char* name : {"k_cache", "v_cache"}) {  // say the field this version has
      const auto at = what.find(name);
      if (at != std::string::npos) what.replace(at, 7, name[0] == 'k' ? "k_codes" : "v_codes");
    }
    throw std::invalid_argument(what);
  }
  if (a.k_scales == nullptr) throw std::invalid_argument("attention_decode 03: k_scales is null");
  if (a.v_scales == nullptr) throw std::invalid_argument("attention_decode 03: v_scales is null");
}

/// Version 3: 02 over 1-byte codes and per-(token, KV head) scales, then 02's merge.
void attention_decode_03_split_kv_quant(const QuantDecodeAttentionArgs& qa, cudaStream_t stream) {
  validate(qa);
  const DecodeAttentionArgs& a = qa.base;
  const int splits = decode_num_splits(a);
  if (splits > 1 && a.workspace == nullptr) {
    throw std::invalid_argument("attention_decode_03_split_kv_quant: workspace is null; " + std::to_string(splits) +
                                " splits need decode_workspace_bytes = " + std::to_string(decode_workspace_bytes(a)) +
                                " bytes");
  }
  QuantSplitParams p{};
  p.q = a.q;
  p.out = a.out;
  p.k_codes = qa.k_codes;
  p.v_codes = qa.v_codes;
  p.k_scales = qa.k_scales;
  p.v_scales = qa.v_scales;
  p.block_table = a.block_table;
  p.seq_lens = a.seq_lens;
  const std::size_t partials = static_cast<std::size_t>(a.batch) * a.n_heads * splits;
  p.o_part = static_cast<float*>(a.workspace);
  p.ml = p.o_part == nullptr ? nullptr : p.o_part + partials * a.head_dim;
  p.n_heads = a.n_heads;
  p.n_kv_heads = a.n_kv_heads;
  p.group = a.n_heads / a.n_kv_heads;
  const int gmax = group_tile(p.group);
  p.head_chunks = ceil_div(p.group, gmax);
  p.block_size = a.block_size;
  p.block_shift = -1;
  if ((a.block_size & (a.block_size - 1)) == 0) {
    p.block_shift = 0;
    while ((1 << p.block_shift) < a.block_size) ++p.block_shift;
  }
  p.max_blocks_per_seq = a.max_blocks_per_seq;
  p.splits = splits;
  p.split_len = ceil_div(a.max_seq_len, splits);
  p.scale_log2 = kLog2e / sqrtf(static_cast<float>(a.head_dim));

  const dim3 grid(splits, a.n_kv_heads * p.head_chunks, a.batch);
  if (qa.code == KvCode::int8)
    launch<KvCode::int8>(p, a.head_dim, gmax, grid, stream);
  else
    launch<KvCode::fp8_e4m3>(p, a.head_dim, gmax, grid, stream);
  CUDA_CHECK(cudaGetLastError());
  if (splits > 1) {
    merge_splits_kernel<<<dim3(a.n_heads, a.batch), kThreads, 0, stream>>>(p.o_part, p.ml, a.out, a.n_heads, splits,
                                                                           a.head_dim);
    CUDA_CHECK(cudaGetLastError());
  }
}

}  // namespace llm::cuda
