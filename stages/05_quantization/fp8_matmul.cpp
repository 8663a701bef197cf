#include "fp8_matmul.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/fp8.h"
#include "kernels/cpu/half.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/parallel.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define LLM_FP8_X86 1
#endif

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

/// The fp16 bits of an E4M3 code's value / 256 (the header's placement; a NaN code gives a NaN).
/// The vector paths do the same 16 or 32 at a time; this one finishes a row's last columns.
inline std::uint16_t e4m3_half_bits(std::uint8_t c) {
  auto h = static_cast<std::uint16_t>(((c & 0x80u) << 8) | ((c & 0x7Fu) << 7));
  if ((c & 0x7Fu) == 0x7Fu) h = static_cast<std::uint16_t>(h | 0x7C00u);
  return h;
}

/// Rows r0 .. r1-1 of W against all n rows of x (one path's work for one chunk of a call).
using RowsFn = void (*)(float* y, const float* x, const std::uint8_t* codes, const float* scales, int n, int cols,
                        int rows, std::int64_t r0, std::int64_t r1);

// ---- table: the definition (each row decoded to fp32, then cpu::dot).
void rows_table(float* y, const float* x, const std::uint8_t* codes, const float* scales, int n, int cols, int rows,
                std::int64_t r0, std::int64_t r1) {
  const auto c = static_cast<std::size_t>(cols);
  std::vector<float> w(c);
  for (std::int64_t r = r0; r < r1; ++r) {
    fp8_decode_row(w.data(), &codes[static_cast<std::size_t>(r) * c], scales[r], cols);
    for (int i = 0; i < n; ++i)
      y[static_cast<std::size_t>(i) * static_cast<std::size_t>(rows) + static_cast<std::size_t>(r)] =
          cpu::dot(&x[static_cast<std::size_t>(i) * c], w.data(), cols);
  }
}

// The last cols % step columns of one row against RX rows of x, scalar (values / 256).
template <int RX>
inline void tail_dots(const std::uint8_t* c, const float* x, std::size_t ldx, int k, int cols, float* sums) {
  for (; k < cols; ++k) {
    const float w = cpu::half_to_float(e4m3_half_bits(c[k]));
    for (int i = 0; i < RX; ++i) sums[i] += w * x[static_cast<std::size_t>(i) * ldx + static_cast<std::size_t>(k)];
  }
}

#if defined(LLM_FP8_X86)
// A NaN code (s.1111.111) in the vector part of a row makes its dots NaN, as the table's
// decode would: the vector paths keep the largest code magnitude of the row and look once at the
// end, instead of turning each NaN code into an fp16 NaN (3 more operations per step).
template <int RX>
inline void nan_sums(float* sums) {
  for (int i = 0; i < RX; ++i) sums[i] = std::numeric_limits<float>::quiet_NaN();
}

// ---- AVX2 + F16C: 16 codes widened to 16-bit lanes, placed, converted 8 at a time.
template <int RX>
__attribute__((target("avx2,fma,f16c"))) void row_f16c(float* y, std::size_t ldy, const float* x, std::size_t ldx,
                                                        const std::uint8_t* c, int cols, float scale) {
  const __m256i keep = _mm256_set1_epi16(static_cast<short>(0xBFFF));
  const __m128i low7 = _mm_set1_epi8(0x7F);
  __m128i most = _mm_setzero_si128();  // the largest code magnitude seen: 0x7F is a NaN
  __m256 acc[RX][2];
  for (int i = 0; i < RX; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  int k = 0;
  for (; k + 16 <= cols; k += 16) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c + k));
    most = _mm_max_epu8(most, _mm_and_si128(b, low7));
    // Sign-extended, shifted by 7: the sign lands in bit 15 (and 14, cleared), e.mmm in 13..7.
    const __m256i h = _mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(b), 7), keep);
    const __m256 w0 = _mm256_cvtph_ps(_mm256_castsi256_si128(h)), w1 = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
#pragma GCC unroll 4
    for (int i = 0; i < RX; ++i) {
      const float* xi = x + static_cast<std::size_t>(i) * ldx + k;
      acc[i][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xi), acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xi + 8), acc[i][1]);
    }
  }
  float sums[RX];
  for (int i = 0; i < RX; ++i) {
    const __m256 a = _mm256_add_ps(acc[i][0], acc[i][1]);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    sums[i] = _mm_cvtss_f32(s);
  }
  if (_mm_movemask_epi8(_mm_cmpeq_epi8(most, low7)) != 0) nan_sums<RX>(sums);
  tail_dots<RX>(c, x, ldx, k, cols, sums);
  for (int i = 0; i < RX; ++i) y[static_cast<std::size_t>(i) * ldy] = sums[i] * scale;
}

// ---- AVX-512 (F, BW): 32 codes per step. GCC 12 warns inside its own headers here (the
// _mm512_undefined_* operand of the extract, cvtph and reduce intrinsics): a false alarm.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
template <int RX>
__attribute__((target("avx512f,avx512bw,fma,f16c"))) void row_avx512(float* y, std::size_t ldy, const float* x,
                                                                      std::size_t ldx, const std::uint8_t* c, int cols,
                                                                      float scale) {
  const __m512i keep = _mm512_set1_epi16(static_cast<short>(0xBFFF));
  const __m256i low7 = _mm256_set1_epi8(0x7F);
  __m256i most = _mm256_setzero_si256();  // the largest code magnitude seen: 0x7F is a NaN
  __m512 acc[RX][2];
  for (int i = 0; i < RX; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  int k = 0;
  for (; k + 32 <= cols; k += 32) {
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + k));
    most = _mm256_max_epu8(most, _mm256_and_si256(b, low7));
    const __m512i h = _mm512_and_si512(_mm512_slli_epi16(_mm512_cvtepi8_epi16(b), 7), keep);
    const __m512 w0 = _mm512_cvtph_ps(_mm512_castsi512_si256(h)), w1 = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
#pragma GCC unroll 4
    for (int i = 0; i < RX; ++i) {
      const float* xi = x + static_cast<std::size_t>(i) * ldx + k;
      acc[i][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xi), acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xi + 16), acc[i][1]);
    }
  }
  float sums[RX];
  for (int i = 0; i < RX; ++i) sums[i] = _mm512_reduce_add_ps(_mm512_add_ps(acc[i][0], acc[i][1]));
  if (_mm256_movemask_epi8(_mm256_cmpeq_epi8(most, low7)) != 0) nan_sums<RX>(sums);
  tail_dots<RX>(c, x, ldx, k, cols, sums);
  for (int i = 0; i < RX; ++i) y[static_cast<std::size_t>(i) * ldy] = sums[i] * scale;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

constexpr std::size_t kPrefetchBytes = 4096;

// Rows r0 .. r1-1 against x in tiles of 4 rows of x: each row of W is decoded once per tile and
// meets the tile's rows in registers (decode: n = 1, one tile; small batches: a few).
template <template <int> class Row>
void rows_vector(float* y, const float* x, const std::uint8_t* codes, const float* scales, int n, int cols, int rows,
                 std::int64_t r0, std::int64_t r1) {
  const auto ldx = static_cast<std::size_t>(cols), ldy = static_cast<std::size_t>(rows);
  auto row = [&](std::int64_t r) {
    const std::uint8_t* c = codes + static_cast<std::size_t>(r) * ldx;
    const float scale = scales[r] * 256.0f;  // the placement's 1/256 (exact: a power of two)
    // The codes kPrefetchBytes ahead requested now (into L2): the decode keeps the core busy,
    // so without this few loads are in flight and the memory waits add to the arithmetic
    // (SmolLM2's classifier, [49152, 576], one thread: 2.0-2.2x faster with it).
    if (static_cast<std::size_t>(r1 - r) * ldx >= kPrefetchBytes + ldx)  // within this chunk's rows
      for (std::size_t b = 0; b < ldx; b += 64) __builtin_prefetch(c + kPrefetchBytes + b, 0, 1);
    float* yr = y + r;
    int i = 0;
    for (; i + 4 <= n; i += 4) Row<4>::run(yr + i * ldy, ldy, x + i * ldx, ldx, c, cols, scale);
    switch (n - i) {
      case 3: Row<3>::run(yr + i * ldy, ldy, x + i * ldx, ldx, c, cols, scale); break;
      case 2: Row<2>::run(yr + i * ldy, ldy, x + i * ldx, ldx, c, cols, scale); break;
      case 1: Row<1>::run(yr + i * ldy, ldy, x + i * ldx, ldx, c, cols, scale); break;
      default: break;
    }
  };
  // Decode (one row of x): the chunk's two halves in turn, two streams through memory (as
  // quant_matmul 04 reads two groups side by side): W from DRAM ([262144, 576], one thread, user
  // CPU) 6.7-7.2 -> 9.4-10.7 GB/s of codes. Each output is the same whatever the order.
  std::int64_t r = r0;
  if (n == 1) {
    const std::int64_t half = (r1 - r0) / 2;
    for (std::int64_t j = 0; j < half; ++j) row(r0 + j), row(r0 + half + j);
    r = r0 + 2 * half;
  }
  for (; r < r1; ++r) row(r);
}

template <int RX>
struct F16cRow {
  static void run(float* y, std::size_t ldy, const float* x, std::size_t ldx, const std::uint8_t* c, int cols,
                  float scale) {
    row_f16c<RX>(y, ldy, x, ldx, c, cols, scale);
  }
};
template <int RX>
struct Avx512Row {
  static void run(float* y, std::size_t ldy, const float* x, std::size_t ldx, const std::uint8_t* c, int cols,
                  float scale) {
    row_avx512<RX>(y, ldy, x, ldx, c, cols, scale);
  }
};
#endif

RowsFn rows_fn(Fp8Path p) {
  switch (p) {
    case Fp8Path::Table:
      return rows_table;
#if defined(LLM_FP8_X86)
    case Fp8Path::F16c:
      return rows_vector<F16cRow>;
    case Fp8Path::Avx512:
      return rows_vector<Avx512Row>;
#else
    default:
      break;
#endif
  }
  throw std::invalid_argument(std::string("fp8_matmul: path ") + fp8_path_name(p) + " is not built for this CPU");
}

// A vector path's decode against the table's (fp8_decode_row, the definition) on all 256 codes,
// once per path and process, before its first use: row c of a 256 x 32 matrix holds code c, and
// one x with a single 1 reads its value out. A wrong placement stops the run here instead of
// giving wrong logits.
void check_against_table(Fp8Path p, RowsFn fn) {
  static std::atomic<bool> checked[3];
  std::atomic<bool>& done = checked[static_cast<int>(p)];
  if (done.load(std::memory_order_acquire)) return;
  constexpr int kCols = 32;
  std::vector<std::uint8_t> codes(256 * kCols);
  for (std::size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<std::uint8_t>(i / kCols);
  const std::vector<float> scales(256, 1.0f);
  std::vector<float> x(kCols, 0.0f), y(256), want(kCols);
  x[7] = 1.0f;
  fn(y.data(), x.data(), codes.data(), scales.data(), 1, kCols, 256, 0, 256);
  for (int c = 0; c < 256; ++c) {
    fp8_decode_row(want.data(), &codes[static_cast<std::size_t>(c) * kCols], 1.0f, kCols);
    const float w = want[7], got = y[static_cast<std::size_t>(c)];
    if (std::isnan(w) ? !std::isnan(got) : got != w)
      throw std::logic_error(std::string("fp8_matmul: the ") + fp8_path_name(p) + " path decodes E4M3 code " +
                             std::to_string(c) + " to " + std::to_string(got) + ", the table to " + std::to_string(w));
  }
  done.store(true, std::memory_order_release);
}

}  // namespace

void fp8_decode_row(float* out, const std::uint8_t* codes, float scale, int cols) {
  const std::array<float, 256>& table = e4m3_table();
  // BEGIN EXERCISE(fp8-decode-row): each code's value (the table) times the row's scale
  for (int j = 0; j < cols; ++j) out[j] = table[codes[j]] * scale;
  // END EXERCISE
}

const char* fp8_path_name(Fp8Path p) {
  switch (p) {
    case Fp8Path::Table: return "table";
    case Fp8Path::F16c: return "avx2-f16c";
    case Fp8Path::Avx512: return "avx512";
  }
  return "?";
}

std::vector<Fp8Path> available_fp8_paths() {
  static const std::vector<Fp8Path> paths = [] {
    std::vector<Fp8Path> p{Fp8Path::Table};
#if defined(LLM_FP8_X86)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu::cpu_has_f16c())
      p.push_back(Fp8Path::F16c);
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && cpu::cpu_has_f16c())
      p.push_back(Fp8Path::Avx512);
#endif
    return p;
  }();
  return paths;
}

void fp8_matmul(float* y, const float* x, const std::uint8_t* codes, const float* scales, int n, int cols, int rows,
                Fp8Path path) {
  const auto& paths = available_fp8_paths();
  if (std::find(paths.begin(), paths.end(), path) == paths.end())
    throw std::invalid_argument(std::string("fp8_matmul: this CPU cannot run the ") + fp8_path_name(path) + " path");
  if (n <= 0 || rows <= 0) return;
  const RowsFn fn = rows_fn(path);
  if (path != Fp8Path::Table) check_against_table(path, fn);
  const std::int64_t grain = cpu::grain_for(static_cast<std::int64_t>(n + 1) * cols, cpu::kMinChunkWork);
  cpu::parallel_for(rows, grain, [&](std::int64_t r0, std::int64_t r1) { fn(y, x, codes, scales, n, cols, rows, r0, r1); });
}

void fp8_matmul(float* y, const float* x, const std::uint8_t* codes, const float* scales, int n, int cols, int rows) {
  fp8_matmul(y, x, codes, scales, n, cols, rows, available_fp8_paths().back());
}

}  // namespace llm::stage05
