// dequantize.h: convert stored weight elements (fp16, bf16, Q8_0, Q4_0, Q4_1) to fp32.
#pragma once

#include <cstddef>
#include <cstdint>

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

}  // namespace llm::cpu
