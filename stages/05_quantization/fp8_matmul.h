// fp8_matmul.h: y = x W^T with W in FP8 E4M3 and one fp32 scale per row (quant_weights.h,
// --weights fp8), the way a CPU without FP8 arithmetic runs it: each row of W is decoded to fp32
// once per call (a 256-entry table, times the row's scale) and meets every row of x there.
// Hopper runs FP8 natively; here it buys the bytes (1 per weight), not the arithmetic.
#pragma once

#include <cstdint>

namespace llm::stage05 {

/// out[cols] = decode(codes[cols]) * scale: one row of an E4M3 matrix in fp32.
void fp8_decode_row(float* out, const std::uint8_t* codes, float scale, int cols);

/// y[n, rows] = x[n, cols] W^T; W's codes [rows, cols], scales [rows]. Threads split W's rows.
void fp8_matmul(float* y, const float* x, const std::uint8_t* codes, const float* scales, int n, int cols, int rows);

}  // namespace llm::stage05
