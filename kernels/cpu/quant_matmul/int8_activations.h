// int8_activations.h: the activations of versions 03 and 04 quantized per block of 32 to int8
// (llama.cpp's Q8_1 idea), private to the quant_matmul versions. Both versions quantize the same
// way, so their results differ only by the order of the float sums.
#pragma once

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

/// One block of 32 activations: q[32] and the returned scale d; *sum = sum of q. The definition
/// (quantize_activations runs it, or its AVX-512 twin, which gives the same bytes).
float quantize_block(const float* xb, std::int8_t* q, std::int32_t* sum);
#if defined(__x86_64__)
/// quantize_block with AVX-512 (F, BW): only on a CPU that has them.
float quantize_block_avx512(const float* xb, std::int8_t* q, std::int32_t* sum);
#endif

/// Quantizes x[rows, in] (in a multiple of 32): q = round(x / d) half away from zero, d = max|x| / 127.
Int8Activations quantize_activations(const float* x, int rows, int in);

}  // namespace llm::cpu::qmm::detail
