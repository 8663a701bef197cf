// block_view.h: reading one block of 32 weights of a Q8_0 / Q4_0 / Q4_1 row (private to the
// quant_matmul versions). Layouts as GGUF stores them (tensor_type.h).
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/tensor_type.h"

namespace llm::cpu::qmm::detail {

inline float load_fp16(const std::uint8_t* p) {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_fp32(h);
}

/// The 32 weights of one block as small integers q[j] and the affine map back: w = q * d + m.
/// Q8_0: q in [-127, 127], m = 0. Q4_0: q = nibble in [0, 15], m = -8d. Q4_1: q = nibble, m = min.
struct Block {
  float d = 0, m = 0;
  int q[32];
};

inline Block read_block(TensorType t, const std::uint8_t* p) {
  Block b;
  b.d = load_fp16(p);
  if (t == TensorType::Q8_0) {
    for (int j = 0; j < 32; ++j) b.q[j] = static_cast<std::int8_t>(p[2 + j]);
    return b;
  }
  const std::uint8_t* qs = p + (t == TensorType::Q4_1 ? 4 : 2);
  b.m = t == TensorType::Q4_1 ? load_fp16(p + 2) : -8.0f * b.d;
  for (int j = 0; j < 16; ++j) {
    b.q[j] = qs[j] & 0x0F;
    b.q[j + 16] = qs[j] >> 4;
  }
  return b;
}

}  // namespace llm::cpu::qmm::detail
