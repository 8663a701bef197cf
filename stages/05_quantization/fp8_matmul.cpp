#include "fp8_matmul.h"

#include <array>
#include <cstddef>
#include <vector>

#include "kernels/cpu/fp8.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/parallel.h"

namespace llm::stage05 {

namespace {

/// Every E4M3 code's value: decoding by table is one load per weight.
const std::array<float, 256>& e4m3_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i)
      t[static_cast<std::size_t>(i)] = cpu::fp8_to_fp32(static_cast<std::uint8_t>(i), cpu::Fp8Format::E4M3);
    return t;
  }();
  return table;
}

}  // namespace

void fp8_decode_row(float* out, const std::uint8_t* codes, float scale, int cols) {
  const std::array<float, 256>& table = e4m3_table();
  // BEGIN EXERCISE(fp8-decode-row): each code's value (the table) times the row's scale
  for (int j = 0; j < cols; ++j) out[j] = table[codes[j]] * scale;
  // END EXERCISE
}

void fp8_matmul(float* y, const float* x, const std::uint8_t* codes, const float* scales, int n, int cols, int rows) {
  const auto c = static_cast<std::size_t>(cols);
  const std::int64_t grain = cpu::grain_for(static_cast<std::int64_t>(n + 1) * cols, cpu::kMinChunkWork);
  cpu::parallel_for(rows, grain, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> w(c);
    for (std::int64_t r = begin; r < end; ++r) {
      fp8_decode_row(w.data(), &codes[static_cast<std::size_t>(r) * c], scales[r], cols);
      for (int i = 0; i < n; ++i)
        y[static_cast<std::size_t>(i) * static_cast<std::size_t>(rows) + static_cast<std::size_t>(r)] =
            cpu::dot(&x[static_cast<std::size_t>(i) * c], w.data(), cols);
    }
  });
}

}  // namespace llm::stage05
