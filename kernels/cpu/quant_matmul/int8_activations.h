// int8_activations.h: the activations of versions 03 and 04 quantized per block of 32 to int8
// (llama.cpp's Q8_1 idea), private to the quant_matmul versions. Both versions quantize the same
// way, so their results differ only by the order of the float sums.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace llm::cpu::qmm::detail {

/// x[rows, in] as int8 blocks: x ~ q * d per block of 32.
struct Int8Activations {
  int rows = 0, blocks = 0;
  std::vector<std::int8_t> q;   ///< [rows, in]
  std::vector<float> d;         ///< [rows, blocks]: max|x| / 127 of the block
  std::vector<std::int32_t> s;  ///< [rows, blocks]: sum of the block's q (the offset term of Q4 and of 04's Q8_0)
  std::vector<float> t;         ///< [rows, blocks]: d * s, rounded once (Q4_1's min term: m * t)
};

/// Quantizes x[rows, in] (in a multiple of 32): q = round(x / d) half away from zero, d = max|x| / 127.
inline Int8Activations quantize_activations(const float* x, int rows, int in) {
  Int8Activations a;
  a.rows = rows;
  a.blocks = in / 32;
  const auto nb = static_cast<std::size_t>(rows) * static_cast<std::size_t>(a.blocks);
  a.q.resize(static_cast<std::size_t>(rows) * static_cast<std::size_t>(in));
  a.d.resize(nb);
  a.s.resize(nb);
  a.t.resize(nb);
  for (std::size_t b = 0; b < nb; ++b) {
    const float* xb = x + b * 32;
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    // Half away from zero as std::lround, spelt with trunc (one instruction, vectorisable; lround
    // and round are library calls, 0.1-0.3 ms of every SmolLM2 decode step): v - trunc(v) is exact.
    std::int8_t* q = &a.q[b * 32];
    for (int j = 0; j < 32; ++j) {
      const float v = xb[j] * id, t = std::trunc(v);
      q[j] = static_cast<std::int8_t>(std::fabs(v - t) >= 0.5f ? t + std::copysign(1.0f, v) : t);
    }
    std::int32_t s = 0;
    for (int j = 0; j < 32; ++j) s += q[j];
    a.d[b] = d;
    a.s[b] = s;
    a.t[b] = d * static_cast<float>(s);
  }
  return a;
}

}  // namespace llm::cpu::qmm::detail
