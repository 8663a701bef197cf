// Dequantization: fp16/bf16 conversions exhaustively, and each block format against blocks
// built by hand from its definition.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>

#include "kernels/cpu/dequantize.h"

using namespace llm;

TEST_CASE("fp16 <-> fp32 is exact for every half value", "[dequantize]") {
  CHECK(cpu::fp16_to_fp32(0x3C00) == 1.0f);
  CHECK(cpu::fp16_to_fp32(0xC000) == -2.0f);
  CHECK(cpu::fp16_to_fp32(0x7BFF) == 65504.0f);
  CHECK(cpu::fp16_to_fp32(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(cpu::fp16_to_fp32(0x03FF) == std::ldexp(1023.0f, -24));
  CHECK(std::isinf(cpu::fp16_to_fp32(0x7C00)));
  CHECK(std::isnan(cpu::fp16_to_fp32(0x7E00)));
  CHECK(std::signbit(cpu::fp16_to_fp32(0x8000)));
  int failures = 0;
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const float f = cpu::fp16_to_fp32(static_cast<std::uint16_t>(h));
    if (std::isnan(f)) continue;
    if (cpu::fp32_to_fp16(f) != h && ++failures <= 10) FAIL_CHECK("half 0x" << std::hex << h << " does not round-trip");
  }
  CHECK(failures == 0);
  // Rounding: halfway between 1 and the next half rounds to even (1.0).
  CHECK(cpu::fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);
  CHECK(cpu::fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3C02);
  CHECK(cpu::fp32_to_fp16(1e6f) == 0x7C00);  // overflow to inf
}

TEST_CASE("bf16 is the top half of a float", "[dequantize]") {
  CHECK(cpu::bf16_to_fp32(0x3F80) == 1.0f);
  CHECK(cpu::bf16_to_fp32(0xC0A0) == -5.0f);
  std::uint16_t raw[2] = {0x3F80, 0xBF00};
  float out[2];
  cpu::dequantize(TensorType::BF16, raw, out, 2);
  CHECK(out[0] == 1.0f);
  CHECK(out[1] == -0.5f);
}

TEST_CASE("Q8_0, Q4_0 and Q4_1 blocks decode as their definitions say", "[dequantize]") {
  const std::uint16_t d = cpu::fp32_to_fp16(0.5f), m = cpu::fp32_to_fp16(-3.0f);
  SECTION("Q8_0: x = q * d") {
    std::uint8_t block[34];
    std::memcpy(block, &d, 2);
    for (int j = 0; j < 32; ++j) block[2 + j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(j - 16));
    float out[32];
    cpu::dequantize(TensorType::Q8_0, block, out, 32);
    for (int j = 0; j < 32; ++j) CHECK(out[j] == 0.5f * static_cast<float>(j - 16));
  }
  SECTION("Q4_0: x = (q - 8) * d, element j in byte j's low nibble, j + 16 in its high nibble") {
    std::uint8_t block[18];
    std::memcpy(block, &d, 2);
    for (int j = 0; j < 16; ++j) block[2 + j] = static_cast<std::uint8_t>(j | ((15 - j) << 4));
    float out[32];
    cpu::dequantize(TensorType::Q4_0, block, out, 32);
    for (int j = 0; j < 16; ++j) {
      CHECK(out[j] == 0.5f * static_cast<float>(j - 8));
      CHECK(out[j + 16] == 0.5f * static_cast<float>(15 - j - 8));
    }
  }
  SECTION("Q4_1: x = q * d + m") {
    std::uint8_t block[20];
    std::memcpy(block, &d, 2);
    std::memcpy(block + 2, &m, 2);
    for (int j = 0; j < 16; ++j) block[4 + j] = static_cast<std::uint8_t>(j | ((15 - j) << 4));
    float out[32];
    cpu::dequantize(TensorType::Q4_1, block, out, 32);
    for (int j = 0; j < 16; ++j) {
      CHECK(out[j] == 0.5f * static_cast<float>(j) - 3.0f);
      CHECK(out[j + 16] == 0.5f * static_cast<float>(15 - j) - 3.0f);
    }
  }
  CHECK(cpu::row_bytes(TensorType::Q4_1, 64) == 40);
  CHECK(cpu::row_bytes(TensorType::Q8_0, 32) == 34);
  CHECK(cpu::row_bytes(TensorType::F16, 10) == 20);
}
