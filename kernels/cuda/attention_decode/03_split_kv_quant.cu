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
//   the merge kernel (split_kv_common.cuh).
//
// Registers per thread (nvcc 13.0, sm_90, -Xptxas -v), by query heads per block 1/2/4/8 (head_dim
// 32-128 within 6): int8 72 112 158-164 205-206, FP8 72 106-107 153-154 205-206 (02: 80 111-113 163
// 217); no spills.
//
// Run: build/kernels/kernel_harness check attention_decode --version 3
//      build/kernels/kernel_harness bench attention_decode --version 3
#include <cuda_fp8.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cuda/attention_decode/attention_decode.cuh"
#include "kernels/cuda/attention_decode/split_kv_common.cuh"
#include "kernels/cuda/check.cuh"

namespace llm::cuda {

namespace {

using split_kv::kThreads;
using split_kv::kWarps;

/// The kernel's parameters: the shared shape (split_kv_common.cuh) and the coded cache.
struct QuantSplitParams : split_kv::Shape {
  const std::uint8_t* k_codes;
  const std::uint8_t* v_codes;
  const float* k_scales;
  const float* v_scales;
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

  const split_kv::Place w = split_kv::place_of_block<GMAX>(p);
  const int split = w.split, kvh = w.kvh, b = w.b, h0 = w.h0, ng = w.ng, k0 = w.k0, k1 = w.k1;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int kg = lane / kLanesPerKey, sub = lane % kLanesPerKey;

  float q[GMAX][8], m[GMAX], l[GMAX], o[GMAX][8];
  split_kv::start_split<D, GMAX>(p, w, sub, q, m, l, o);

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

    // 3. One online-softmax update per head for the chunk (split_kv_common.cuh).
    split_kv::softmax_chunk<GMAX, kSteps, kLanesPerKey>(s, m, l, o, ng);

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

  // The lanes' and warps' partial results merged; the split's (m, l, o) or the output written.
  split_kv::finish_split<D, GMAX, kLanesPerKey>(m, l, o, ng, b, h0, split, p.n_heads, p.splits, p.out, p.o_part, p.ml);
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
  QuantSplitParams p{};
  static_cast<split_kv::Shape&>(p) =
      split_kv::split_shape(a, decode_num_splits(a), "attention_decode_03_split_kv_quant");
  p.k_codes = qa.k_codes;
  p.v_codes = qa.v_codes;
  p.k_scales = qa.k_scales;
  p.v_scales = qa.v_scales;
  if (qa.code == KvCode::int8)
    launch<KvCode::int8>(p, a.head_dim, p.gmax, p.grid, stream);
  else
    launch<KvCode::fp8_e4m3>(p, a.head_dim, p.gmax, p.grid, stream);
  CUDA_CHECK(cudaGetLastError());
  split_kv::merge_splits(p, a.batch, a.head_dim, stream);
}

}  // namespace llm::cuda
