// kv_quant.h: the K/V cache's storage (--kv-cache). Each token's K and V rows are rounded as they
// are written, per KV head (head_dim values):
//   f32   kept as computed                                   4 bytes per element
//   f16   rounded to fp16 (stage 04's)                       2
//   int8  scale = max|x| / 127, q = round(x / scale)         1 (+ one fp32 scale per head)
//   fp8   scale = max|x| / 448, E4M3 code of x / scale       1 (+ one fp32 scale per head)
// The CPU backend keeps the rounded values as floats (as stage 04 keeps fp16 ones), so what it
// computes is what a cache of these bytes gives; the pool's books count the format's bytes, so at
// one byte budget an int8/fp8 pool holds twice the tokens of an fp16 one.
#pragma once

#include <cstddef>
#include <string>

#include "stages/04_cuda/cpu_ops.h"

namespace llm::stage05 {

/// The rounding of --kv-cache `kind` (f32: none). Throws llm::Error for another value.
stage04::KvRounding kv_rounding(const std::string& kind);
/// Bytes per element the pool counts for it (the per-head scales aside: 4 / head_dim more).
std::size_t kv_element_bytes(const std::string& kind);

/// In place: each head of row ([n_kv_heads * head_dim]) to int8 with its own scale and back.
void round_kv_to_int8(float* row, int n_kv_heads, int head_dim);
/// In place: each head of row to FP8 E4M3 with its own scale and back.
void round_kv_to_fp8(float* row, int n_kv_heads, int head_dim);

}  // namespace llm::stage05
