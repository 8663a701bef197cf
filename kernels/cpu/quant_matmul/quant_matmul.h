// quant_matmul.h: y = x W^T with W stored quantized (GGUF's Q8_0, Q4_0, Q4_1), as numbered
// versions; the order is the lesson (stage 05's README):
//
//   01  dequantize a row of W to fp32, then fp32 dot products: simple; it writes and reads back
//       a row of floats for every row of W, so it moves more bytes than the fp32 kernel it replaces
//   02  dequantize in registers, fused with the dot ("W8A32" / "W4A32"): W is read once, as
//       stored: 1.06 (Q8_0) or 0.56-0.63 (Q4) bytes per weight instead of 4
//   03  quantize the activations too, per block of 32 to int8 with a scale, and take integer dot
//       products ("W8A8" / "W4A8", llama.cpp's scheme): 32 multiply-adds per instruction with
//       AVX2's maddubs, or AVX-VNNI / AVX-512 VNNI's dpbusd; a portable scalar path everywhere
//   04  03's arithmetic on W repacked once at load: 16 rows interleaved 4 bytes at a time, so one
//       dpbusd feeds 16 rows' sums and no horizontal sums or scalar scales remain (the fast one)
//
// Every version reads each block of W once per call for up to 16 rows of x (decode and small
// batches: the weight bandwidth is shared by the batch) and takes larger batches 16 rows at a
// time (prefill). The threads (parallel.h) split W's rows.
//
//   quant_harness check | bench      (kernels/cpu/quant_matmul/harness.cpp)
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu/tensor_type.h"

namespace llm::cpu::qmm {

/// A quantized weight matrix: `out` rows of `in` elements (in a multiple of 32), row-major,
/// each row row_bytes(type, in) bytes, type Q8_0, Q4_0 or Q4_1.
struct QuantMatrix {
  TensorType type = TensorType::Q8_0;
  const std::uint8_t* data = nullptr;
  int in = 0, out = 0;
  std::size_t row_bytes() const;
  /// Throws std::invalid_argument for a type or shape these kernels do not take.
  void validate() const;
};

/// Version 01: y[n, out] = x[n, in] W^T, each row of W dequantized to fp32 first.
void matmul_01_dequantize_row(float* y, const float* x, const QuantMatrix& W, int n);

/// Version 02: the same, dequantized in registers and fused with the dot.
void matmul_02_fused(float* y, const float* x, const QuantMatrix& W, int n);

/// The instruction sets version 03's integer dot can use.
enum class Int8Path { Scalar, Avx2, AvxVnni, Avx512Vnni };
const char* int8_path_name(Int8Path p);
/// The paths this CPU can run (cpuid), Scalar first; the last is the fastest.
std::vector<Int8Path> available_int8_paths();

/// Version 03: x quantized per block of 32 to int8 (scale max|x|/127), integer block dots.
/// Its error against 01/02 is the activations' quantization: about 0.5/127 of each block's max.
void matmul_03_int8(float* y, const float* x, const QuantMatrix& W, int n, Int8Path path);
/// Version 03 on the fastest path this CPU has.
void matmul_03_int8(float* y, const float* x, const QuantMatrix& W, int n);

/// Version 04's layout of a QuantMatrix (04_int8_packed.cpp draws it): groups of kRows rows (the
/// last padded with zero rows), each group `group_bytes()` apart (a multiple of 64) and holding,
/// per block of 32 columns, the rows' interleaved quants (Q8_0: 512 bytes, q + 128; Q4: 256 bytes
/// of nibbles) and then, per block, the kRows fp16 scales d (and Q4_1's kRows fp16 mins).
/// Move-only; data is 64-byte aligned.
struct PackedMatrix {
  static constexpr int kRows = 16;
  struct Free {
    void operator()(std::uint8_t* p) const;
  };
  TensorType type = TensorType::Q8_0;
  int in = 0, out = 0;
  std::unique_ptr<std::uint8_t, Free> data;
  int groups() const { return (out + kRows - 1) / kRows; }
  std::size_t group_bytes() const;
  /// The bytes a call reads (all groups, padding included).
  std::size_t bytes() const { return group_bytes() * static_cast<std::size_t>(groups()); }
};

/// Repacks W (GGUF row layout) for version 04; W must pass validate().
PackedMatrix pack_rows_16(const QuantMatrix& W);

/// Version 04: y[n, out] = x[n, in] W^T, version 03's activation quantization, integer dots on the
/// packed layout; the same float operations on every path (bit for bit), `path` as for 03.
void matmul_04_int8_packed(float* y, const float* x, const PackedMatrix& W, int n, Int8Path path);
/// Version 04 on the fastest path this CPU has.
void matmul_04_int8_packed(float* y, const float* x, const PackedMatrix& W, int n);

}  // namespace llm::cpu::qmm
