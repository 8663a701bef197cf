// fp8.h: the two 8-bit float formats of the OCP FP8 specification (v1.0, 2023), as used by
// Hopper's tensor cores, and their conversion to and from fp32.
//
//   E4M3  s eeee mmm, bias 7: no infinities, one NaN pattern per sign (s.1111.111), largest
//         finite 448, smallest subnormal 2^-9. For weights and activations (more precision).
//   E5M2  s eeeee mm, bias 15: IEEE-like, with +-Inf (s.11111.00) and NaNs (s.11111.{01,10,11}),
//         largest finite 57344, smallest subnormal 2^-16. For gradients (more range).
//
// Encoding rounds to nearest, ties to even, and saturates: a finite value beyond the largest
// finite code, or an infinity, becomes that largest code with its sign (the "satfinite" mode of
// CUDA's __nv_cvt_float_to_fp8); NaN stays NaN. Decoding is exact (every code is a float).
#pragma once

#include <cstdint>

namespace llm::cpu {

/// Which FP8 format a byte holds.
enum class Fp8Format { E4M3, E5M2 };

/// The float that FP8 code `code` stands for (exact; NaN for the NaN codes, +-Inf for E5M2's).
float fp8_to_fp32(std::uint8_t code, Fp8Format format);

/// The FP8 code nearest to x (ties to even), saturating at the largest finite value.
std::uint8_t fp32_to_fp8(float x, Fp8Format format);

/// The largest finite value of the format: 448 (E4M3) or 57344 (E5M2).
float fp8_max(Fp8Format format);

/// "E4M3" or "E5M2".
const char* fp8_name(Fp8Format format);

}  // namespace llm::cpu
