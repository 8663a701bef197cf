// fp8_matmul.h: y = x W^T with W in FP8 E4M3 and one fp32 scale per row (quant_weights.h,
// --weights fp8), the way a CPU without FP8 arithmetic runs it. Hopper multiplies FP8 natively;
// here FP8 buys the bytes (1 per weight, a quarter of fp32's), and the decode must cost less than
// the memory saves. Two ways, picked by what the CPU has (asked once):
//
//   table   each row decoded to fp32 through a 256-entry table (fp8_decode_row, the exercise),
//           times its scale, then fp32 dots: the definition, portable, and slow: a load and a
//           store per weight, and the row of floats read back (stage 05's first version: 0.5x
//           stage 01's fp32 on SmolLM2)
//   f16c    E4M3 turned into fp16 bits with integer operations in registers, then the CPU's
//   avx512  fp16 -> fp32 conversion (vcvtph2ps) straight into FMAs; the row's scale applied
//           once to each dot. E4M3 is fp16 with fewer bits: sign s, exponent e (bias 7),
//           mantissa m (3 bits). Placed in fp16's fields as s.0eeee.mmm0000000 (the code's low
//           7 bits shifted up by 7, its sign to bit 15), the fp16 value is the E4M3 value times
//           2^(7-15) = 1/256, for normal and subnormal codes alike (an E4M3 subnormal m * 2^-9
//           lands on the fp16 subnormal m * 2^-17); the 256 goes into the row's scale. A NaN
//           code (s.1111.111) makes its row's dots NaN. 16 weights (F16C, AVX2 widening) or 32
//           (AVX-512 BW) per step: about 10 GB/s of codes per core with W in cache, the
//           conversions' port, not memory, the limit (the q8_0 kernel, integer dots, runs ~8x that).
//
// The same products in another order: the fast paths match the table's within fp32 rounding.
// Before a vector path's first use in a process, its decode of all 256 codes is checked against
// fp8_decode_row's (the table stays the definition; a wrong decode stops the run there).
#pragma once

#include <cstdint>
#include <vector>

namespace llm::stage05 {

/// out[cols] = decode(codes[cols]) * scale: one row of an E4M3 matrix in fp32.
void fp8_decode_row(float* out, const std::uint8_t* codes, float scale, int cols);

/// The ways fp8_matmul can run, slowest first.
enum class Fp8Path { Table, F16c, Avx512 };
const char* fp8_path_name(Fp8Path p);
/// The paths this CPU runs (Table always, first); the last is the fastest.
std::vector<Fp8Path> available_fp8_paths();

/// y[n, rows] = x[n, cols] W^T; W's codes [rows, cols], scales [rows]. Threads split W's rows.
/// Throws std::invalid_argument for a path this CPU cannot run.
void fp8_matmul(float* y, const float* x, const std::uint8_t* codes, const float* scales, int n, int cols, int rows,
                Fp8Path path);
/// The same on the fastest path this CPU has.
void fp8_matmul(float* y, const float* x, const std::uint8_t* codes, const float* scales, int n, int cols, int rows);

}  // namespace llm::stage05
