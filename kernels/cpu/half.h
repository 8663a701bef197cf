// half.h: IEEE fp16 and bfloat16 storage on the CPU: conversion to and from float with
// round-to-nearest-even, the rounding the GPU's __float2half_rn / __float2bfloat16_rn use.
//
// The CUDA kernels keep weights, K/V and attention inputs in 16-bit floats. Their CPU twins
// compute in float from the *same rounded values*, so that a comparison measures the kernel's
// arithmetic, not the rounding of its inputs. Tests check these against the CPU's F16C instructions
// (an independent implementation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && !defined(__CUDACC__)
#include <cpuid.h>
#include <immintrin.h>
#define LLM_HALF_F16C 1
#endif

namespace llm::cpu {

/// The bits of a float and back (memcpy, so that the header also compiles where a CUDA build
/// falls back to C++17: nvcc older than 12).
inline std::uint32_t float_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

/// fp16 bits -> float (exact: every fp16 value is a float).
inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu;
  std::uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return bits_float(sign | 0x7F800000u | (mant << 13));  // inf / NaN
  if (exp != 0) return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
  if (mant == 0) return bits_float(sign);  // signed zero
  // Subnormal: value = mant * 2^-24, exact in float.
  const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
  return sign ? -v : v;
}

/// float -> fp16 bits, round to nearest even; overflow gives inf, NaN stays NaN.
inline std::uint16_t float_to_half(float f) {
  const std::uint32_t x = float_bits(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t ax = x & 0x7FFFFFFFu;
  if (ax >= 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7C00u | (ax > 0x7F800000u ? 0x200u : 0u));
  if (ax >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // rounds to >= 65520: inf
  if (ax < 0x38800000u) {
    // Result is subnormal (or zero): value / 2^-24 rounded to nearest even integer.
    if (ax < 0x33000000u) return sign;  // below half the smallest subnormal: zero
    const std::uint32_t e = ax >> 23;
    const std::uint32_t m = (ax & 0x7FFFFFu) | 0x800000u;
    const std::uint32_t shift = 126u - e;  // 2^(e-127) * m/2^23 / 2^-24 = m >> (126 - e)
    std::uint32_t r = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
    return static_cast<std::uint16_t>(sign | r);
  }
  // Normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even.
  std::uint32_t r = ((ax >> 13) - (112u << 10));
  const std::uint32_t rem = ax & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;  // a carry into the exponent is correct
  return static_cast<std::uint16_t>(sign | r);
}

/// bfloat16 bits -> float (exact: bf16 is the top half of a float).
inline float bf16_to_float(std::uint16_t b) { return bits_float(static_cast<std::uint32_t>(b) << 16); }

/// float -> bfloat16 bits, round to nearest even; NaN stays NaN.
inline std::uint16_t float_to_bf16(float f) {
  const std::uint32_t x = float_bits(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);
  return static_cast<std::uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

/// Rounds every value to the nearest fp16 (as a float): what a kernel reading fp16 sees.
inline void round_to_half(std::vector<float>& v) {
  for (auto& x : v) x = half_to_float(float_to_half(x));
}

#if defined(LLM_HALF_F16C)
/// Whether this CPU (and its OS) can run AVX and F16C (vcvtps2ph / vcvtph2ps). F16C is CPUID leaf 1,
/// ECX bit 29, asked directly: clang 14's __builtin_cpu_supports has no name for it.
inline bool cpu_has_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __builtin_cpu_supports("avx") && __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0;
}

/// round_to_half's F16C path (only on a CPU with AVX and F16C): 8 values per vcvtps2ph / vcvtph2ps.
__attribute__((target("avx,f16c"))) inline void round_to_half_f16c(const float* src, std::size_t n, float* dst) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT)));
  for (; i < n; ++i) dst[i] = half_to_float(float_to_half(src[i]));
}
#endif

/// dst[i] = src[i] rounded to the nearest fp16 value, as a float: what storing an activation in
/// fp16 does (float_to_half then half_to_float), 8 at a time with F16C where the CPU has it
/// (asked once), the same values (a NaN stays a NaN). dst may equal src.
inline void round_to_half(const float* src, std::size_t n, float* dst) {
#if defined(LLM_HALF_F16C)
  static const bool f16c = cpu_has_f16c();
  if (f16c) return round_to_half_f16c(src, n, dst);
#endif
  for (std::size_t i = 0; i < n; ++i) dst[i] = half_to_float(float_to_half(src[i]));
}

/// The fp16 bits of every value.
inline std::vector<std::uint16_t> to_half_bits(const std::vector<float>& v) {
  std::vector<std::uint16_t> h(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) h[i] = float_to_half(v[i]);
  return h;
}

/// Floats from fp16 bits.
inline std::vector<float> from_half_bits(const std::vector<std::uint16_t>& h) {
  std::vector<float> v(h.size());
  for (std::size_t i = 0; i < h.size(); ++i) v[i] = half_to_float(h[i]);
  return v;
}

}  // namespace llm::cpu
