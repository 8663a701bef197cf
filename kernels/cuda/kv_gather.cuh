// kv_gather.cuh: one sequence's K/V read out of the paged cache as contiguous fp16 rows, the
// input of prefill attention (kernels/cuda/attention_prefill), which takes K and V as
// [kv_len, n_kv_heads, head_dim] fp16. The cache keeps them in blocks anywhere in the pool
// (stage 03's block table); row p comes from slot table[p / block_size] * block_size +
// p % block_size.
//
//   gather_kv          stage 04's fp16 cache: a copy (16-byte loads when kv_dim % 8 == 0)
//   gather_kv_dequant  stage 05's int8 / FP8 E4M3 cache (--kv-cache int8|fp8): each value
//                      decoded (exactly: an int8 or an E4M3 code is an fp32 value), times its
//                      (token, KV head) scale in fp32, rounded to fp16. This is where the GPU's
//                      prefill differs from the CPU twin's paged_prefill_attention_quant, which
//                      applies the fp32 scale in the dot: the GPU adds one fp16 rounding
//                      (relative 2^-11) per value.
// CPU twin of gather_kv_dequant: llm::cpu::fp8_to_fp32(code) or the int8 value, times the scale,
// then llm::cpu::float_to_half: equal bit for bit (gpu_stage05 [gpu-kv-append]).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/attention_decode/attention_decode.cuh"  // KvCode

namespace llm::cuda {

/// Rows 0 .. len-1 of one sequence, device memory:
///   k_out, v_out:  [len, n_kv_heads * head_dim] fp16
///   table:         [ceil(len / block_size)] int32 block ids
///   fp16 cache:    k_cache, v_cache [num_slots, n_kv_heads * head_dim] fp16
///   coded cache:   k_codes, v_codes [num_slots, n_kv_heads * head_dim] bytes and
///                  k_scales, v_scales [num_slots, n_kv_heads] fp32
struct GatherKvArgs {
  __half* k_out = nullptr;
  __half* v_out = nullptr;
  const int* table = nullptr;
  const __half* k_cache = nullptr;
  const __half* v_cache = nullptr;
  const std::uint8_t* k_codes = nullptr;
  const std::uint8_t* v_codes = nullptr;
  const float* k_scales = nullptr;
  const float* v_scales = nullptr;
  KvCode code = KvCode::int8;
  int len = 0;
  int block_size = 16;
  int n_kv_heads = 1;
  int head_dim = 64;
};

/// The fp16 cache's rows (k_cache, v_cache).
void gather_kv(const GatherKvArgs& a, cudaStream_t stream);
/// The coded cache's rows, dequantized to fp16 (k_codes, v_codes, the scales, code).
void gather_kv_dequant(const GatherKvArgs& a, cudaStream_t stream);

}  // namespace llm::cuda
