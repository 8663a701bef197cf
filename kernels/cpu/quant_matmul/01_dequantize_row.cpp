// Version 01: dequantize a row of W to fp32, then fp32 dot products with every row of x.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/quant_matmul/quant_matmul.h"

namespace llm::cpu::qmm {

std::size_t QuantMatrix::row_bytes() const {
  return cpu::row_bytes(type, static_cast<std::size_t>(in));
}

void QuantMatrix::validate() const {
  if (type != TensorType::Q8_0 && type != TensorType::Q4_0 && type != TensorType::Q4_1)
    throw std::invalid_argument("quant_matmul: type " + tensor_type_name(type) + " is not Q8_0, Q4_0 or Q4_1");
  if (in <= 0 || in % 32 != 0 || out <= 0)
    throw std::invalid_argument("quant_matmul: shape [" + std::to_string(out) + ", " + std::to_string(in) +
                                "]: in must be a positive multiple of 32");
  if (data == nullptr) throw std::invalid_argument("quant_matmul: no data");
}

void matmul_01_dequantize_row(float* y, const float* x, const QuantMatrix& W, int n) {
  W.validate();
  const std::size_t rb = W.row_bytes();
  const auto in = static_cast<std::size_t>(W.in);
  parallel_for(W.out, grain_for(std::int64_t{W.in} * (n + 2), kMinChunkWork), [&](std::int64_t o0, std::int64_t o1) {
    std::vector<float> row(in);  // the fp32 copy of one row of W: the extra traffic this version pays
    for (auto o = o0; o < o1; ++o) {
      dequantize(W.type, W.data + static_cast<std::size_t>(o) * rb, row.data(), in);
      for (int i = 0; i < n; ++i) y[static_cast<std::size_t>(i) * W.out + o] = dot(row.data(), x + i * in, W.in);
    }
  });
}

}  // namespace llm::cpu::qmm
