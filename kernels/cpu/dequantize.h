// dequantize.h: convert stored weight elements (fp16, bf16, Q8_0, Q4_0, Q4_1) to fp32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "kernels/cpu/tensor_type.h"

namespace llm::cpu {

/// IEEE half (binary16) bits to float, exact (subnormals, inf and NaN included).
float fp16_to_fp32(std::uint16_t h);
/// Float to IEEE half bits, round to nearest even.
std::uint16_t fp32_to_fp16(float f);
/// bfloat16 bits to float (exact: the top 16 bits of a float).
float bf16_to_fp32(std::uint16_t b);

/// Bytes that n elements of type t occupy. n must be a multiple of block_elements(t).
std::size_t row_bytes(TensorType t, std::size_t n);

/// dst[0..n) = the n elements at src, stored as type t. n must be a multiple of
/// block_elements(t); src must hold row_bytes(t, n) bytes (any alignment).
void dequantize(TensorType t, const void* src, float* dst, std::size_t n);

/// The index of the first NaN or +-Inf in x[0..n), or n when every element is finite. Loaders run
/// it over each dequantized tensor: one bad weight turns every logit into NaN.
std::size_t first_non_finite(const float* x, std::size_t n);

/// A quantized block's fp16 scale d and, for Q4_1, its min m, as floats.
struct BlockScales {
  float d = 0.0f;
  float m = 0.0f;
  bool has_min = false;  ///< Q4_1 only
};
/// The scales of block `block` of a tensor of type t stored at src; nothing for the unblocked
/// types (F32, F16, BF16). With finite scales every Q8_0/Q4_0/Q4_1 value is finite, so a
/// non-finite dequantized value points at its block's scales.
std::optional<BlockScales> block_scales(TensorType t, const void* src, std::size_t block);

}  // namespace llm::cpu
