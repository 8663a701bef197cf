// int8_activations.cpp: the activations of quant_matmul 03 and 04 as int8 blocks (int8_activations.h).
#include "kernels/cpu/quant_matmul/int8_activations.h"

#include <algorithm>
#include <cmath>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace llm::cpu::qmm::detail {

float quantize_block(const float* xb, std::int8_t* q, std::int32_t* sum) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xb[j]));
  const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  // Half away from zero as std::lround, spelt with trunc (one instruction; lround and round are
  // library calls, 0.1-0.3 ms of every SmolLM2 decode step): v - trunc(v) is exact.
  std::int32_t s = 0;
  for (int j = 0; j < 32; ++j) {
    const float v = xb[j] * id, t = std::trunc(v);
    q[j] = static_cast<std::int8_t>(std::fabs(v - t) >= 0.5f ? t + std::copysign(1.0f, v) : t);
    s += q[j];
  }
  *sum = s;
  return d;
}

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512dq"))) float quantize_block_avx512(const float* xb, std::int8_t* q,
                                                                        std::int32_t* sum) {
  const __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
  const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  const __m512 vid = _mm512_set1_ps(id), half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  __m512i qi[2];
  const __m512 xs[2] = {x0, x1};
  for (int h = 0; h < 2; ++h) {
    const __m512 v = _mm512_mul_ps(xs[h], vid);
    const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), half, _CMP_GE_OQ);
    // t + copysign(1, v): the sign bit of v on 1.0
    const __m512 step = _mm512_or_ps(one, _mm512_and_ps(v, _mm512_castsi512_ps(_mm512_set1_epi32(INT32_MIN))));
    qi[h] = _mm512_cvttps_epi32(_mm512_mask_add_ps(t, up, t, step));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16 * h), _mm512_cvtepi32_epi8(qi[h]));
  }
  *sum = _mm512_reduce_add_epi32(_mm512_add_epi32(qi[0], qi[1]));
  return d;
}
#endif

Int8Activations quantize_activations(const float* x, int rows, int in) {
  Int8Activations a;
  a.rows = rows;
  a.blocks = in / 32;
  const auto nb = static_cast<std::size_t>(rows) * static_cast<std::size_t>(a.blocks);
  a.q.resize(static_cast<std::size_t>(rows) * static_cast<std::size_t>(in));
  a.d.resize(nb);
  a.s.resize(nb);
  a.t.resize(nb);
#if defined(__x86_64__)
  static const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                             __builtin_cpu_supports("avx512dq");  // _mm512_and_ps, _mm512_or_ps
#else
  constexpr bool avx512 = false;
#endif
  for (std::size_t b = 0; b < nb; ++b) {
    std::int32_t s = 0;
#if defined(__x86_64__)
    const float d =
        avx512 ? quantize_block_avx512(x + b * 32, &a.q[b * 32], &s) : quantize_block(x + b * 32, &a.q[b * 32], &s);
#else
    const float d = quantize_block(x + b * 32, &a.q[b * 32], &s);
#endif
    a.d[b] = d;
    a.s[b] = s;
    a.t[b] = d * static_cast<float>(s);
  }
  return a;
}

}  // namespace llm::cpu::qmm::detail
