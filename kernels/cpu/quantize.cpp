#include "kernels/cpu/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/cpu/dequantize.h"

namespace llm::cpu {

namespace {

constexpr std::size_t kBlock = 32;

void put_fp16(std::uint8_t* p, float f) {
  const std::uint16_t h = fp32_to_fp16(f);
  std::memcpy(p, &h, 2);
}

// The float arithmetic below is ggml's (quantize_row_*_ref): the same operations in the same order,
// in fp32 (this file is compiled without FMA contraction), so the bytes match.
void q8_0_block(const float* x, std::uint8_t* out) {
  // BEGIN EXERCISE(q8-quantize-block) stage 05: one Q8_0 block: fp16 scale d = max|x| / 127, then each x / d rounded to int8
  float amax = 0.0f;
  for (std::size_t j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  // Multiply by 1/d rather than divide by d, and round half away from zero (std::round): that is
  // what ggml does, and any other choice gives other bytes than llama.cpp's for some blocks.
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  put_fp16(out, d);
  for (std::size_t j = 0; j < kBlock; ++j)
    out[2 + j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(std::round(x[j] * id)));
  // END EXERCISE
}

void q4_0_block(const float* x, std::uint8_t* out) {
  float amax = 0.0f, max = 0.0f;
  for (std::size_t j = 0; j < kBlock; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  put_fp16(out, d);
  for (std::size_t j = 0; j < kBlock / 2; ++j) {
    const auto lo = std::min<int>(15, static_cast<std::int8_t>(x[j] * id + 8.5f));
    const auto hi = std::min<int>(15, static_cast<std::int8_t>(x[j + kBlock / 2] * id + 8.5f));
    out[2 + j] = static_cast<std::uint8_t>(lo | (hi << 4));
  }
}

void q4_1_block(const float* x, std::uint8_t* out) {
  float min = x[0], max = x[0];
  for (std::size_t j = 1; j < kBlock; ++j) {
    min = std::min(min, x[j]);
    max = std::max(max, x[j]);
  }
  const float d = (max - min) / 15.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  put_fp16(out, d);
  put_fp16(out + 2, min);
  for (std::size_t j = 0; j < kBlock / 2; ++j) {
    const auto lo = std::min<int>(15, static_cast<std::int8_t>((x[j] - min) * id + 0.5f));
    const auto hi = std::min<int>(15, static_cast<std::int8_t>((x[j + kBlock / 2] - min) * id + 0.5f));
    out[4 + j] = static_cast<std::uint8_t>(lo | (hi << 4));
  }
}

}  // namespace

void quantize(TensorType t, const float* x, void* dst, std::size_t n) {
  const std::size_t be = block_elements(t);
  if (n % be != 0) {
    throw std::invalid_argument("quantize: " + std::to_string(n) + " elements are not whole " + tensor_type_name(t) +
                                " blocks of " + std::to_string(be));
  }
  auto* out = static_cast<std::uint8_t*>(dst);
  const std::size_t bb = block_bytes(t);
  switch (t) {
    case TensorType::F32:
      std::memcpy(out, x, n * sizeof(float));
      return;
    case TensorType::F16:
      for (std::size_t i = 0; i < n; ++i) put_fp16(out + 2 * i, x[i]);
      return;
    case TensorType::BF16:
      for (std::size_t i = 0; i < n; ++i) {
        // Round to nearest even on the 16 bits dropped (NaN kept quiet).
        std::uint32_t u;
        std::memcpy(&u, &x[i], 4);
        const std::uint16_t b = std::isnan(x[i]) ? static_cast<std::uint16_t>((u >> 16) | 0x40)
                                                 : static_cast<std::uint16_t>((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
        std::memcpy(out + 2 * i, &b, 2);
      }
      return;
    case TensorType::Q8_0:
      for (std::size_t b = 0; b < n / be; ++b) q8_0_block(x + b * be, out + b * bb);
      return;
    case TensorType::Q4_0:
      for (std::size_t b = 0; b < n / be; ++b) q4_0_block(x + b * be, out + b * bb);
      return;
    case TensorType::Q4_1:
      for (std::size_t b = 0; b < n / be; ++b) q4_1_block(x + b * be, out + b * bb);
      return;
  }
  throw std::invalid_argument("quantize: no quantizer for type " + tensor_type_name(t));
}

float quantize_fp8_row(const float* x, std::uint8_t* codes, std::size_t n, Fp8Format format) {
  float amax = 0.0f;
  for (std::size_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float scale = amax > 0.0f ? amax / fp8_max(format) : 1.0f;
  for (std::size_t i = 0; i < n; ++i) codes[i] = fp32_to_fp8(x[i] / scale, format);
  return scale;
}

}  // namespace llm::cpu
