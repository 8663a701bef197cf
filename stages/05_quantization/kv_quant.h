// kv_quant.h: the K/V cache's storage (--kv-cache). Each token's K and V rows are stored as they
// are written, per KV head (head_dim values):
//   f32   as computed                                        4 bytes per element
//   f16   rounded to fp16 (stage 04's)                       2
//   int8  scale = max|x| / 127, code = round(x / scale)      1 + one fp32 scale per token and KV head
//   fp8   scale = max|x| / 448, E4M3 code of x / scale       1 + one fp32 scale per token and KV head
// The CPU backend (stage 04's CpuOps) keeps exactly these bytes (kernels/cpu/attention.h's
// QuantPagedKvView layout) and attention reads the codes, applying the scales in the dot. The
// pool's books count the same bytes, so at one byte budget an int8/fp8 pool holds nearly twice
// the tokens of an fp16 one and four times those of f32 (the scales cost 4 / head_dim bytes per
// element: 6% at head_dim 64). The scale is fp32 rather than fp16: it costs 2 bytes more per
// head, and amax / 448 of a small row would fall into fp16's subnormals, losing its precision.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "stages/04_cuda/cpu_ops.h"

namespace llm::stage05 {

/// The storage of --kv-cache `kind` as CpuOps keeps it. Throws llm::Error for another value.
stage04::KvStorage kv_storage(const std::string& kind);
/// Bytes per element of `kind`'s codes: 4, 2, 1, 1 (the scales are kv_scale_bytes per head).
std::size_t kv_element_bytes(const std::string& kind);
/// Bytes of `kind`'s scale per token, KV head and K or V: 4 for int8/fp8, 0 otherwise.
std::size_t kv_scale_bytes(const std::string& kind);

/// One KV head's row x [head_dim] as int8: *scale = max|x| / 127 and codes[i] = round(x[i] / scale)
/// in -127..127, so x[i] ~ *scale * codes[i]. An all-zero row has scale 0; a row holding NaN or
/// Inf gets a non-finite scale, so that what attention reads is not finite either.
void quantize_kv_int8(const float* x, int head_dim, std::int8_t* codes, float* scale);
/// One KV head's row as FP8 E4M3 codes of x / scale, *scale = max|x| / 448 (the same rules).
void quantize_kv_fp8(const float* x, int head_dim, std::uint8_t* codes, float* scale);

}  // namespace llm::stage05
