#include "kernels/cpu/fp8.h"

#include <algorithm>
#include <cmath>

namespace llm::cpu {

namespace {

// The geometry of a format: exponent and mantissa bits, bias, and whether the all-ones
// exponent is reserved for Inf/NaN (E5M2, like IEEE) or holds finite values (E4M3).
struct Layout {
  int exp_bits, man_bits, bias;
  bool ieee_specials;
};

constexpr Layout layout(Fp8Format f) {
  return f == Fp8Format::E4M3 ? Layout{4, 3, 7, false} : Layout{5, 2, 15, true};
}

// The code of the largest finite magnitude (sign bit clear).
constexpr std::uint8_t max_code(Fp8Format f) {
  return f == Fp8Format::E4M3 ? 0x7E : 0x7B;
}
// A NaN code (sign bit clear): E4M3's only one, and E5M2's quiet NaN with every mantissa bit set.
constexpr std::uint8_t nan_code(Fp8Format) {
  return 0x7F;
}

}  // namespace

float fp8_to_fp32(std::uint8_t code, Fp8Format format) {
  const Layout L = layout(format);
  const bool negative = (code & 0x80) != 0;
  const int e = (code >> L.man_bits) & ((1 << L.exp_bits) - 1);
  const int m = code & ((1 << L.man_bits) - 1);
  const int e_all_ones = (1 << L.exp_bits) - 1;
  float v;
  if (L.ieee_specials && e == e_all_ones) {
    v = m == 0 ? INFINITY : NAN;
  } else if (!L.ieee_specials && e == e_all_ones && m == (1 << L.man_bits) - 1) {
    v = NAN;
  } else if (e == 0) {  // subnormal: m * 2^(1 - bias - man_bits)
    v = std::ldexp(static_cast<float>(m), 1 - L.bias - L.man_bits);
  } else {  // normal: (2^man_bits + m) * 2^(e - bias - man_bits)
    v = std::ldexp(static_cast<float>((1 << L.man_bits) + m), e - L.bias - L.man_bits);
  }
  return negative ? -v : v;
}

std::uint8_t fp32_to_fp8(float x, Fp8Format format) {
  const Layout L = layout(format);
  const std::uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  if (std::isnan(x)) return sign | nan_code(format);
  const float a = std::fabs(x);
  const float max = fp8_max(format);
  if (a >= max) return sign | max_code(format);  // saturate (infinities included)
  // The spacing of representable values around a: 2^(exponent - man_bits), never finer than the
  // subnormals' 2^(1 - bias - man_bits). a / quantum and back are exact (powers of two), and
  // rint rounds half to even in the default rounding mode.
  int exponent;
  std::frexp(a, &exponent);  // a = f * 2^exponent, f in [0.5, 1): the leading bit is 2^(exponent-1)
  const int min_normal_exp = 1 - L.bias;
  const int lead = std::max(exponent - 1, min_normal_exp);
  const float quantum = std::ldexp(1.0f, lead - L.man_bits);
  const float v = std::rint(a / quantum) * quantum;  // the nearest representable magnitude
  if (v >= max) return sign | max_code(format);
  if (v == 0.0f) return sign;
  // Encode v exactly: it may have rounded up into the next binade.
  std::frexp(v, &exponent);
  const int e = exponent - 1;
  if (e < min_normal_exp) {  // subnormal: v = m * 2^(min_normal_exp - man_bits)
    const int m = static_cast<int>(std::ldexp(v, L.man_bits - min_normal_exp));
    return sign | static_cast<std::uint8_t>(m);
  }
  const int m = static_cast<int>(std::ldexp(v, L.man_bits - e)) - (1 << L.man_bits);
  return sign | static_cast<std::uint8_t>(((e + L.bias) << L.man_bits) | m);
}

float fp8_max(Fp8Format format) {
  return format == Fp8Format::E4M3 ? 448.0f : 57344.0f;
}

const char* fp8_name(Fp8Format format) {
  return format == Fp8Format::E4M3 ? "E4M3" : "E5M2";
}

}  // namespace llm::cpu
