#include "kernels/cpu/dequantize.h"

#include <bit>
#include <cstring>

namespace llm::cpu {

namespace {
std::uint16_t load_u16(const std::uint8_t* p) {
  std::uint16_t v;
  std::memcpy(&v, p, 2);  // GGUF is little-endian, like every machine we build for
  return v;
}
}  // namespace

float fp16_to_fp32(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu;
  std::uint32_t mant = h & 0x3FFu;
  std::uint32_t bits;
  if (exp == 0x1F) {  // inf / NaN
    bits = sign | 0x7F800000u | (mant << 13);
  } else if (exp != 0) {  // normal
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {  // zero
    bits = sign;
  } else {  // subnormal: renormalize
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    bits = sign | (static_cast<std::uint32_t>(112 - e) << 23) | ((mant & 0x3FFu) << 13);
  }
  return std::bit_cast<float>(bits);
}

std::uint16_t fp32_to_fp16(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t abs = x & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7C00u | (abs > 0x7F800000u ? 0x200u : 0u));
  if (abs >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // overflow -> inf
  if (abs < 0x38800000u) {                                                    // result is subnormal or zero
    if (abs < 0x33000000u) return static_cast<std::uint16_t>(sign);
    const std::uint32_t e = abs >> 23;
    const std::uint32_t m = (abs & 0x7FFFFFu) | 0x800000u;
    const std::uint32_t shift = 126 - e;  // 14..24
    std::uint32_t half = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1);
    const std::uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) ++half;
    return static_cast<std::uint16_t>(sign | half);
  }
  std::uint32_t half = ((abs - 0x38000000u) >> 13);
  const std::uint32_t rem = abs & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;
  return static_cast<std::uint16_t>(sign | half);
}

float bf16_to_fp32(std::uint16_t b) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

std::size_t row_bytes(TensorType t, std::size_t n) {
  return n / block_elements(t) * block_bytes(t);
}

void dequantize(TensorType t, const void* src, float* dst, std::size_t n) {
  const auto* p = static_cast<const std::uint8_t*>(src);
  switch (t) {
    case TensorType::F32:
      std::memcpy(dst, p, n * sizeof(float));
      return;
    case TensorType::F16:
      for (std::size_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(load_u16(p + 2 * i));
      return;
    case TensorType::BF16:
      for (std::size_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(load_u16(p + 2 * i));
      return;
    case TensorType::Q8_0:
      for (std::size_t b = 0; b < n / 32; ++b, p += 34, dst += 32) {
        const float d = fp16_to_fp32(load_u16(p));
        const auto* q = reinterpret_cast<const std::int8_t*>(p + 2);
        for (int j = 0; j < 32; ++j) dst[j] = static_cast<float>(q[j]) * d;
      }
      return;
    case TensorType::Q4_0:
      // Byte j holds element j in its low nibble and element j + 16 in its high nibble.
      for (std::size_t b = 0; b < n / 32; ++b, p += 18, dst += 32) {
        const float d = fp16_to_fp32(load_u16(p));
        for (int j = 0; j < 16; ++j) {
          dst[j] = static_cast<float>((p[2 + j] & 0x0F) - 8) * d;
          dst[j + 16] = static_cast<float>((p[2 + j] >> 4) - 8) * d;
        }
      }
      return;
    case TensorType::Q4_1:
      for (std::size_t b = 0; b < n / 32; ++b, p += 20, dst += 32) {
        const float d = fp16_to_fp32(load_u16(p));
        const float m = fp16_to_fp32(load_u16(p + 2));
        for (int j = 0; j < 16; ++j) {
          dst[j] = static_cast<float>(p[4 + j] & 0x0F) * d + m;
          dst[j + 16] = static_cast<float>(p[4 + j] >> 4) * d + m;
        }
      }
      return;
  }
}

std::size_t first_non_finite(const float* x, std::size_t n) {
  // Exponent bits all ones is exactly NaN or Inf; scanning in chunks without an early exit per
  // element lets the compiler vectorise the test, so a pass costs little next to the load.
  constexpr std::size_t kChunk = 4096;
  for (std::size_t begin = 0; begin < n; begin += kChunk) {
    const std::size_t end = begin + kChunk < n ? begin + kChunk : n;
    std::uint32_t any = 0;
    for (std::size_t i = begin; i < end; ++i)
      any |= static_cast<std::uint32_t>((std::bit_cast<std::uint32_t>(x[i]) & 0x7F800000u) == 0x7F800000u);
    if (any == 0) continue;
    for (std::size_t i = begin; i < end; ++i)
      if ((std::bit_cast<std::uint32_t>(x[i]) & 0x7F800000u) == 0x7F800000u) return i;
  }
  return n;
}

std::optional<BlockScales> block_scales(TensorType t, const void* src, std::size_t block) {
  const auto* p = static_cast<const std::uint8_t*>(src) + block * block_bytes(t);
  switch (t) {
    case TensorType::Q8_0:
    case TensorType::Q4_0:
      return BlockScales{fp16_to_fp32(load_u16(p)), 0.0f, false};
    case TensorType::Q4_1:
      return BlockScales{fp16_to_fp32(load_u16(p)), fp16_to_fp32(load_u16(p + 2)), true};
    case TensorType::F32:
    case TensorType::F16:
    case TensorType::BF16:
      break;
  }
  return std::nullopt;
}

}  // namespace llm::cpu
