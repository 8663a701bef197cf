// rope_kv.cuh: rotary position embedding fused with the KV-cache write.
//
// After the QKV projection each token's row holds q | k | v in fp32. One kernel rotates q and
// k (the interleaved-pairs convention of llm::cpu::rope), writes q as the fp16 input of
// attention, and writes k and v as fp16 into the token's slot of the paged KV cache
// (slot = block * block_size + offset, the block table's address of the token). Unfused this
// is a RoPE kernel, a cast and a scatter: three trips through memory instead of one.
// CPU twin: llm::cpu::rope plus the slot arithmetic (kernels/harness/families/pointwise.cu).
// Check and time: build/kernels/kernel_harness check pointwise / bench pointwise
//
// rope_store_kv_quant is the same step for stage 05's quantized cache (--kv-cache int8|fp8): k and
// v are kept in fp32 after the rotation (in shared memory) and each (token, KV head) row of
// head_dim values is quantized as it is appended: scale = max|x| / 127 (int8) or / 448 (FP8 E4M3),
// code = round(x / scale) (int8, ties to even, clamped to +-127) or the E4M3 code of x / scale
// (round to nearest even, saturating: __nv_cvt_float_to_fp8 with __NV_SATFINITE); a row whose
// max|x| is 0, NaN or Inf gets codes 0 and that max as its scale. CPU twin: llm::cpu::rope, then
// stage 05's quantize_kv_int8 / quantize_kv_fp8 (stages/05_quantization/kv_quant.h) per head:
// equal bit for bit at position 0 (the rotation is the identity there), within one code elsewhere
// (the rotation's fp32 rounding may differ); checked by gpu_stage05 [gpu-kv-append]. The layout is
// that of attention_decode 03 (QuantDecodeAttentionArgs): codes [num_slots, n_kv_heads, head_dim]
// bytes, scales [num_slots, n_kv_heads] fp32.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/attention_decode/attention_decode.cuh"  // KvCode

namespace llm::cuda {

/// What rope_store_kv and rope_store_kv_quant share: the step's q | k | v rows, where each token
/// goes, and the rotation. All pointers are device memory.
struct RopeStepArgs {
  const float* qkv = nullptr;   ///< [n, (n_heads + 2 * n_kv_heads) * head_dim]: q | k | v per token
  const int* positions = nullptr;  ///< [n]: each token's position in its sequence
  const int* slots = nullptr;      ///< [n]: each token's KV slot, block * block_size + offset
  __half* q_out = nullptr;         ///< [n, n_heads, head_dim]
  int n = 0;
  int n_heads = 1;
  int n_kv_heads = 1;
  int head_dim = 64;  ///< even
  float theta = 10000.0f;
};

/// Arguments of rope_store_kv: the step's, and the fp16 cache (device memory).
struct RopeStoreKvArgs : RopeStepArgs {
  __half* k_cache = nullptr;  ///< [num_slots, n_kv_heads, head_dim]
  __half* v_cache = nullptr;  ///< [num_slots, n_kv_heads, head_dim]
};

void rope_store_kv(const RopeStoreKvArgs& a, cudaStream_t stream = 0);

/// Arguments of rope_store_kv_quant: the step's, and the cache as 1-byte codes and fp32 scales
/// (device memory):
///   k_codes, v_codes:   [num_slots, n_kv_heads, head_dim] int8 or E4M3 codes
///   k_scales, v_scales: [num_slots, n_kv_heads]: value = scale * decode(code)
struct RopeStoreKvQuantArgs : RopeStepArgs {
  std::uint8_t* k_codes = nullptr;
  std::uint8_t* v_codes = nullptr;
  float* k_scales = nullptr;
  float* v_scales = nullptr;
  KvCode code = KvCode::int8;
};

/// RoPE, q to fp16, and k, v quantized into the token's slot (see the top of this file). Throws
/// std::invalid_argument naming the field for an odd head_dim, no heads, or k and v rows larger
/// than the 48 KiB of shared memory a block gets by default (kv_dim > 6144).
void rope_store_kv_quant(const RopeStoreKvQuantArgs& a, cudaStream_t stream = 0);

}  // namespace llm::cuda
