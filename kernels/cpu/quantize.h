// quantize.h: fp32 rows to the block formats GGUF stores (Q8_0, Q4_0, Q4_1), exactly as ggml's
// reference quantizers do, so that files we write read back the same in llama.cpp and gguf-py;
// and to FP8 codes with one scale per row. dequantize.h holds the way back.
//
//   Q8_0  per block of 32: d = max|x| / 127, q = round(x / d) (half away from zero), x ~ q * d
//   Q4_0  per block of 32: m = the element of largest magnitude (with its sign), d = m / -8,
//         q = min(15, trunc(x / d + 8.5)), x ~ (q - 8) * d; element j in the low nibble of byte j,
//         element j + 16 in its high nibble
//   Q4_1  per block of 32: d = (max - min) / 15, q = min(15, trunc((x - min) / d + 0.5)),
//         x ~ q * d + min; nibbles as Q4_0
//   FP8   per row: scale = max|x| / fp8_max (1 for an all-zero row), code = fp32_to_fp8(x / scale)
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/fp8.h"
#include "kernels/cpu/tensor_type.h"

namespace llm::cpu {

/// dst = x[0..n) stored as type t (Q8_0, Q4_0, Q4_1, F16, BF16 or F32); n must be a multiple
/// of block_elements(t) and dst must hold row_bytes(t, n) bytes. Throws std::invalid_argument otherwise
/// (callers check shapes first: a bad shape is a bug here, not bad input).
void quantize(TensorType t, const float* x, void* dst, std::size_t n);

/// codes[0..n) = x[0..n) / scale in FP8, with scale = max|x| / fp8_max(format) (1 when every x
/// is 0). Returns the scale (dequantize: fp8_to_fp32(code) * scale). x must be finite.
float quantize_fp8_row(const float* x, std::uint8_t* codes, std::size_t n, Fp8Format format);

}  // namespace llm::cpu
