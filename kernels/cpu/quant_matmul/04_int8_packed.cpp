// Version 04: version 03's integer dot products on W repacked at load for the vector unit.
//
// Version 03 multiplies one block of one row of W at a time: one dpbusd gives eight partial sums
// that must be added across the register (a horizontal sum: 4-5 instructions for 1 of work) and
// the block's scale is applied in a scalar. Here 16 rows of W are interleaved so that each 32-bit
// lane of a 512-bit register holds 4 weights of a different row (llama.cpp's repacked "x16"
// layouts, and AMX's tiles, have the same idea):
//
//   tile (16 rows x one block of 32), quants: 8 chunks of 64 bytes; chunk k, bytes 4l..4l+3 =
//   weights 4k..4k+3 of row l. One dpbusd of chunk k with 4 activation bytes broadcast to every
//   lane adds 4 products to each of the 16 rows' sums: 8 dpbusd give 16 block dots, no horizontal
//   sum; the 16 fp16 scales are one vcvtph2ps, and one FMA applies them to 16 rows at once.
//
//   Q8_0: the int8 weights stored plus 128 (dpbusd's first operand is unsigned); the sum then
//         starts at -128 * (sum of the activation block) instead of 0, so it is the signed dot.
//   Q4_0/Q4_1: chunk c (c < 4) holds the nibbles of weights 4c..4c+3 in its low halves and those
//         of 4(c+4)..4(c+4)+3 in its high halves: one and, one shift+and give two chunks. Q4_0's
//         -8 offset is folded into the start of the sum (-8 * sum of the activations), Q4_1's
//         min is a second FMA per block with m and d_x * sum(q_x).
//
// Each tile of W is read once per call for up to 16 rows of x (decode and small batches: the
// weight bandwidth is shared by the batch); the threads split the groups of 16 rows. At decode
// (one row of x) the AVX-512 path reads two groups side by side, from the two halves of a
// thread's share: two streams through memory keep more requests in flight than one (kStreams).
//
// The float arithmetic is the same in every path and fixed per output: for each block b in order,
//   acc = fma(d_b * dx_b, float(D_b), acc)        (D_b the exact integer block dot)
//   acc = fma(m_b, dx_b * s_b, acc)               (Q4_1 only)
// so the paths agree bit for bit; the scalar path is the definition.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/quant_matmul/block_view.h"
#include "kernels/cpu/quant_matmul/int8_activations.h"
#include "kernels/cpu/quant_matmul/int8_build.h"
#include "kernels/cpu/quant_matmul/quant_matmul.h"

namespace llm::cpu::qmm {

namespace {

constexpr int kRows = PackedMatrix::kRows;
constexpr int kXTile = 16;  // rows of x per pass over a group of W
// Groups a decode call (one row of x, AVX-512 VNNI) reads side by side: one core streaming one
// place in memory keeps too few requests in flight (demand loads alone: ~9 GB/s here); from two
// places at once the L2 prefetchers run two streams. Measured, one thread, W from DRAM
// ([262144, 576], 8 repeats, user CPU): q4_0 8.5-9.2 -> 11.1-11.4 GB/s with 2, 10.2-10.3 with 4,
// 9.6 with 8; q8_0 10.3-10.4 -> 12.7 with 2, 13.2-13.5 with 4.
constexpr int kStreams = 2;

// Bytes of one tile's quants, and of its scales (d, and Q4_1's m), per type.
int tile_quant_bytes(TensorType t) {
  return t == TensorType::Q8_0 ? 512 : 256;
}
int tile_scale_bytes(TensorType t) {
  return t == TensorType::Q4_1 ? 4 * kRows : 2 * kRows;
}

// The integer the sum of a block dot starts from, so that it ends as the dot with the weights'
// true values (see the header): Q8_0 stores q + 128, Q4_0 stores q + 8.
inline std::int32_t dot_start(TensorType t, std::int32_t act_sum) {
  return t == TensorType::Q8_0 ? -128 * act_sum : t == TensorType::Q4_0 ? -8 * act_sum : 0;
}

// One group of 16 rows of W against rows i0 .. i0+rows-1 of x: acc[i * 16 + l] = y[i0 + i, row l].
using GroupFn = void (*)(const PackedMatrix& W, const std::uint8_t* group, const detail::Int8Activations& a, int i0,
                         int rows, float* acc);

// ---- scalar: the definition.
template <TensorType T>
LLM_NO_VECTORIZE void group_scalar(const PackedMatrix& W, const std::uint8_t* group, const detail::Int8Activations& a,
                                   int i0, int rows, float* acc) {
  const int blocks = W.in / 32;
  const std::uint8_t* scales = group + static_cast<std::size_t>(blocks) * tile_quant_bytes(T);
  for (int i = 0; i < rows; ++i) {
    for (int l = 0; l < kRows; ++l) {
      float s = 0;
      for (int b = 0; b < blocks; ++b) {
        const std::uint8_t* qb = group + static_cast<std::size_t>(b) * tile_quant_bytes(T);
        const std::uint8_t* sb = scales + static_cast<std::size_t>(b) * tile_scale_bytes(T);
        const auto ab =
            static_cast<std::size_t>(i0 + i) * static_cast<std::size_t>(blocks) + static_cast<std::size_t>(b);
        const std::int8_t* xq = &a.q[ab * 32];
        std::int32_t dot = 0;
        for (int j = 0; j < 32; ++j) {
          int w;
          if (T == TensorType::Q8_0) {
            w = static_cast<std::int8_t>(qb[(j / 4) * 64 + l * 4 + j % 4] ^ 0x80);
          } else {
            const std::uint8_t byte = qb[((j / 4) % 4) * 64 + l * 4 + j % 4];
            w = (j < 16 ? byte & 0x0F : byte >> 4) - (T == TensorType::Q4_0 ? 8 : 0);
          }
          dot += w * xq[j];
        }
        s = std::fma(detail::load_fp16(sb + 2 * l) * a.d[ab], static_cast<float>(dot), s);
        if (T == TensorType::Q4_1) s = std::fma(detail::load_fp16(sb + 2 * kRows + 2 * l), a.t[ab], s);
      }
      acc[i * kRows + l] = s;
    }
  }
}

#if LLM_X86
inline std::int32_t load_i32(const std::int8_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// ---- AVX-512 VNNI: a whole group (16 rows) per register.
#define LLM_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vnni,fma,f16c")))

// One tile's quants (block b of a group, 16 rows) as 8 chunks of 4 weights per row, unsigned.
template <TensorType T>
LLM_AVX512VNNI inline void load_tile_avx512(const std::uint8_t* qb, __m512i (&w)[8]) {
  if (T == TensorType::Q8_0) {
    for (int k = 0; k < 8; ++k) w[k] = _mm512_loadu_si512(qb + 64 * k);
    return;
  }
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  for (int c = 0; c < 4; ++c) {
    const __m512i v = _mm512_loadu_si512(qb + 64 * c);
    w[c] = _mm512_and_si512(v, low4);
    w[c + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
  }
}

// sum += the tile's 16 block dots with activation block ab (the header's float operations).
template <TensorType T>
LLM_AVX512VNNI inline __m512 tile_dot_avx512(const __m512i (&w)[8], const std::uint8_t* sb, __m512 d,
                                             const detail::Int8Activations& a, std::size_t ab, __m512 sum) {
  const std::int8_t* xq = &a.q[ab * 32];
  // Two chains of dpbusd for the latency; integer sums, so their order changes nothing.
  __m512i s0 = _mm512_set1_epi32(dot_start(T, a.s[ab])), s1 = _mm512_setzero_si512();
  for (int k = 0; k < 8; k += 2) {
    s0 = _mm512_dpbusd_epi32(s0, w[k], _mm512_set1_epi32(load_i32(xq + 4 * k)));
    s1 = _mm512_dpbusd_epi32(s1, w[k + 1], _mm512_set1_epi32(load_i32(xq + 4 * k + 4)));
  }
  const __m512 dot = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
  sum = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(a.d[ab])), dot, sum);
  if (T == TensorType::Q4_1) {
    const __m512 m = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sb + 2 * kRows)));
    sum = _mm512_fmadd_ps(m, _mm512_set1_ps(a.t[ab]), sum);
  }
  return sum;
}

template <TensorType T>
LLM_AVX512VNNI void group_avx512vnni(const PackedMatrix& W, const std::uint8_t* group, const detail::Int8Activations& a,
                                     int i0, int rows, float* acc) {
  const int blocks = W.in / 32;
  const std::uint8_t* scales = group + static_cast<std::size_t>(blocks) * tile_quant_bytes(T);
  __m512 sum[kXTile];
  for (int i = 0; i < rows; ++i) sum[i] = _mm512_setzero_ps();
  for (int b = 0; b < blocks; ++b) {
    const std::uint8_t* sb = scales + static_cast<std::size_t>(b) * tile_scale_bytes(T);
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sb)));
    __m512i w[8];
    load_tile_avx512<T>(group + static_cast<std::size_t>(b) * tile_quant_bytes(T), w);
    for (int i = 0; i < rows; ++i)
      sum[i] = tile_dot_avx512<T>(
          w, sb, d, a, static_cast<std::size_t>(i0 + i) * static_cast<std::size_t>(blocks) + static_cast<std::size_t>(b),
          sum[i]);
  }
  for (int i = 0; i < rows; ++i) _mm512_storeu_ps(acc + i * kRows, sum[i]);
}

// ---- AVX-512 VNNI, one row of x (decode), kStreams groups side by side: block b of each group
// in turn. The same operations per group as group_avx512vnni (the same bits); what changes is
// that memory sees kStreams streams at once, far apart.
template <TensorType T>
LLM_AVX512VNNI void groups_side_by_side_avx512vnni(const PackedMatrix& W, const std::uint8_t* const groups[kStreams],
                                                   const detail::Int8Activations& a, int i0,
                                                   float* const acc[kStreams]) {
  const int blocks = W.in / 32;
  __m512 sum[kStreams];
  for (int p = 0; p < kStreams; ++p) sum[p] = _mm512_setzero_ps();
  for (int b = 0; b < blocks; ++b) {
    const auto ab = static_cast<std::size_t>(i0) * static_cast<std::size_t>(blocks) + static_cast<std::size_t>(b);
    for (int p = 0; p < kStreams; ++p) {
      const std::uint8_t* sb = groups[p] + static_cast<std::size_t>(blocks) * tile_quant_bytes(T) +
                               static_cast<std::size_t>(b) * tile_scale_bytes(T);
      const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sb)));
      __m512i w[8];
      load_tile_avx512<T>(groups[p] + static_cast<std::size_t>(b) * tile_quant_bytes(T), w);
      sum[p] = tile_dot_avx512<T>(w, sb, d, a, ab, sum[p]);
    }
  }
  for (int p = 0; p < kStreams; ++p) _mm512_storeu_ps(acc[p], sum[p]);
}
#undef LLM_AVX512VNNI

// ---- AVX2 and AVX-VNNI: 256-bit registers, so the group in two halves of 8 rows. One template
// compiled for both (its target names AVX-VNNI; the AVX2 instantiation holds only intrinsics, no
// loop the compiler could vectorise into VNNI instructions, so it runs on a CPU without them).
// AVX-VNNI: dpbusd. AVX2: maddubs (u8 x s8, pairs summed to s16) then madd by ones (to s32); its
// pair sums saturate past 32767, so Q8_0's stored q + 128 (up to 255) is turned back into the
// signed q and its sign moved onto x (|q| <= 128, |x| <= 127: a pair fits), and the sum starts at 0.
template <bool kVnni>
__attribute__((target("avx2,fma,f16c,avxvnni"))) inline __m256i dot4_256(__m256i acc, __m256i u, __m256i x,
                                                                         bool signed_q8) {
  if (kVnni) return _mm256_dpbusd_avx_epi32(acc, u, x);
  const __m256i ones = _mm256_set1_epi16(1);
  if (signed_q8) {
    const __m256i q = _mm256_xor_si256(u, _mm256_set1_epi8(static_cast<char>(0x80)));
    return _mm256_add_epi32(
        acc, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(x, q)), ones));
  }
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), ones));
}

template <TensorType T, bool kVnni>
__attribute__((target("avx2,fma,f16c,avxvnni"))) void group_avx256(const PackedMatrix& W, const std::uint8_t* group,
                                                                   const detail::Int8Activations& a, int i0, int rows,
                                                                   float* acc) {
  const int blocks = W.in / 32;
  const std::uint8_t* scales = group + static_cast<std::size_t>(blocks) * tile_quant_bytes(T);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const bool q8_signed = T == TensorType::Q8_0 && !kVnni;
  for (int h = 0; h < 2; ++h) {  // rows 8h .. 8h+7 of the group: bytes 32h .. 32h+31 of every chunk
    __m256 sum[kXTile];
    for (int i = 0; i < rows; ++i) sum[i] = _mm256_setzero_ps();
    for (int b = 0; b < blocks; ++b) {
      const std::uint8_t* qb = group + static_cast<std::size_t>(b) * tile_quant_bytes(T) + 32 * h;
      const std::uint8_t* sb = scales + static_cast<std::size_t>(b) * tile_scale_bytes(T) + 16 * h;
      const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sb)));
      __m256i w[8];
      if (T == TensorType::Q8_0) {
        for (int k = 0; k < 8; ++k) w[k] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qb + 64 * k));
      } else {
        for (int c = 0; c < 4; ++c) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qb + 64 * c));
          w[c] = _mm256_and_si256(v, low4);
          w[c + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
        }
      }
      for (int i = 0; i < rows; ++i) {
        const auto ab =
            static_cast<std::size_t>(i0 + i) * static_cast<std::size_t>(blocks) + static_cast<std::size_t>(b);
        const std::int8_t* xq = &a.q[ab * 32];
        __m256i s0 = _mm256_set1_epi32(q8_signed ? 0 : dot_start(T, a.s[ab])), s1 = _mm256_setzero_si256();
        for (int k = 0; k < 8; k += 2) {
          s0 = dot4_256<kVnni>(s0, w[k], _mm256_set1_epi32(load_i32(xq + 4 * k)), q8_signed);
          s1 = dot4_256<kVnni>(s1, w[k + 1], _mm256_set1_epi32(load_i32(xq + 4 * k + 4)), q8_signed);
        }
        const __m256 dot = _mm256_cvtepi32_ps(_mm256_add_epi32(s0, s1));
        sum[i] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(a.d[ab])), dot, sum[i]);
        if (T == TensorType::Q4_1) {
          const __m256 m = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sb + 2 * kRows)));
          sum[i] = _mm256_fmadd_ps(m, _mm256_set1_ps(a.t[ab]), sum[i]);
        }
      }
    }
    for (int i = 0; i < rows; ++i) _mm256_storeu_ps(acc + i * kRows + 8 * h, sum[i]);
  }
}
#endif

template <TensorType T>
GroupFn group_fn_for(Int8Path p) {
  switch (p) {
    case Int8Path::Scalar:
      return group_scalar<T>;
#if LLM_X86
    case Int8Path::Avx2:
      return group_avx256<T, false>;
    case Int8Path::AvxVnni:
      return group_avx256<T, true>;
    case Int8Path::Avx512Vnni:
      return group_avx512vnni<T>;
#else
    default:
      break;
#endif
  }
  throw std::invalid_argument(std::string("quant_matmul: path ") + int8_path_name(p) + " is not built for this CPU");
}

GroupFn group_fn_for(TensorType t, Int8Path p) {
  if (t == TensorType::Q8_0) return group_fn_for<TensorType::Q8_0>(p);
  if (t == TensorType::Q4_0) return group_fn_for<TensorType::Q4_0>(p);
  return group_fn_for<TensorType::Q4_1>(p);
}

}  // namespace

void PackedMatrix::Free::operator()(std::uint8_t* p) const {
  std::free(p);
}

std::size_t PackedMatrix::group_bytes() const {
  const auto blocks = static_cast<std::size_t>(in / 32);
  const std::size_t b = blocks * static_cast<std::size_t>(tile_quant_bytes(type) + tile_scale_bytes(type));
  return (b + 63) / 64 * 64;
}

PackedMatrix pack_rows_16(const QuantMatrix& W) {
  W.validate();
  PackedMatrix P;
  P.type = W.type;
  P.in = W.in;
  P.out = W.out;
  const std::size_t gb = P.group_bytes(), total = gb * static_cast<std::size_t>(P.groups());
  P.data.reset(static_cast<std::uint8_t*>(std::aligned_alloc(64, total)));
  if (!P.data) throw std::bad_alloc();
  std::memset(P.data.get(), 0, total);  // rows past `out`: scales 0, so they add nothing (and are not written)
  const int blocks = W.in / 32;
  const std::size_t rb = W.row_bytes(), bb = rb / static_cast<std::size_t>(blocks);
  const std::size_t qbytes = static_cast<std::size_t>(tile_quant_bytes(W.type)),
                    sbytes = static_cast<std::size_t>(tile_scale_bytes(W.type));
  for (int r = 0; r < W.out; ++r) {
    std::uint8_t* group = P.data.get() + static_cast<std::size_t>(r / kRows) * gb;
    std::uint8_t* scales = group + static_cast<std::size_t>(blocks) * qbytes;
    const int l = r % kRows;
    for (int b = 0; b < blocks; ++b) {
      const std::uint8_t* p = W.data + static_cast<std::size_t>(r) * rb + static_cast<std::size_t>(b) * bb;
      std::uint8_t* qb = group + static_cast<std::size_t>(b) * qbytes;
      std::uint8_t* sb = scales + static_cast<std::size_t>(b) * sbytes;
      std::memcpy(sb + 2 * l, p, 2);  // d
      if (W.type == TensorType::Q8_0) {
        for (int j = 0; j < 32; ++j) qb[(j / 4) * 64 + l * 4 + j % 4] = static_cast<std::uint8_t>(p[2 + j] ^ 0x80);
        continue;
      }
      if (W.type == TensorType::Q4_1) std::memcpy(sb + 2 * kRows + 2 * l, p + 2, 2);  // m
      const std::uint8_t* qs = p + (W.type == TensorType::Q4_1 ? 4 : 2);
      // Element j < 16 is the low nibble of qs[j], element j + 16 its high nibble (block_view.h):
      // chunk c's low nibbles (weights 4c..4c+3) and high nibbles (4c+16..4c+19) are qs[4c..4c+3].
      for (int c = 0; c < 4; ++c) std::memcpy(qb + c * 64 + l * 4, qs + 4 * c, 4);
    }
  }
  return P;
}

void matmul_04_int8_packed(float* y, const float* x, const PackedMatrix& W, int n, Int8Path path) {
  if (!W.data || W.in <= 0 || W.in % 32 != 0 || W.out <= 0)
    throw std::invalid_argument("quant_matmul: matmul_04_int8_packed needs a matrix from pack_rows_16");
  const auto paths = available_int8_paths();
  if (std::find(paths.begin(), paths.end(), path) == paths.end())
    throw std::invalid_argument(std::string("quant_matmul: this CPU cannot run the ") + int8_path_name(path) + " path");
  if (n <= 0) return;
  const GroupFn fn = group_fn_for(W.type, path);
  const detail::Int8Activations a = detail::quantize_activations(x, n, W.in);
  const std::size_t gb = W.group_bytes();
  // Chunks of at least 32 KiB of W per row of x: a few microseconds, worth another thread.
  const std::int64_t grain = grain_for(static_cast<std::int64_t>(gb) * n, std::int64_t{1} << 15);
  using SideBySideFn = void (*)(const PackedMatrix&, const std::uint8_t* const[kStreams],
                                const detail::Int8Activations&, int, float* const[kStreams]);
  SideBySideFn side_by_side = nullptr;
#if LLM_X86
  if (n == 1 && path == Int8Path::Avx512Vnni)
    side_by_side = W.type == TensorType::Q8_0   ? groups_side_by_side_avx512vnni<TensorType::Q8_0>
                   : W.type == TensorType::Q4_0 ? groups_side_by_side_avx512vnni<TensorType::Q4_0>
                                                : groups_side_by_side_avx512vnni<TensorType::Q4_1>;
#endif
  parallel_for(W.groups(), grain, [&](std::int64_t g0, std::int64_t g1) {
    alignas(64) float acc[kXTile * kRows];
    if (side_by_side != nullptr) {
      // Decode: kStreams parts of the chunk side by side, as many streams through memory.
      const std::int64_t part = (g1 - g0) / kStreams;
      alignas(64) float accs_[kStreams][kRows];
      for (std::int64_t j = 0; j < part; ++j) {
        const std::uint8_t* groups[kStreams];
        float* accs[kStreams];
        for (int p = 0; p < kStreams; ++p) {
          groups[p] = W.data.get() + static_cast<std::size_t>(g0 + p * part + j) * gb;
          accs[p] = accs_[p];
        }
        side_by_side(W, groups, a, 0, accs);
        for (int p = 0; p < kStreams; ++p) {
          const int r0 = static_cast<int>(g0 + p * part + j) * kRows, valid = std::min(kRows, W.out - r0);
          std::memcpy(y + r0, accs_[p], static_cast<std::size_t>(valid) * sizeof(float));
        }
      }
      g0 += kStreams * part;  // the groups left over: below, one at a time
    }
    for (auto g = g0; g < g1; ++g) {
      const std::uint8_t* group = W.data.get() + static_cast<std::size_t>(g) * gb;
      const int r0 = static_cast<int>(g) * kRows, valid = std::min(kRows, W.out - r0);
      for (int i0 = 0; i0 < n; i0 += kXTile) {
        const int rows = std::min(kXTile, n - i0);
        fn(W, group, a, i0, rows, acc);
        for (int i = 0; i < rows; ++i)
          std::memcpy(y + static_cast<std::size_t>(i0 + i) * W.out + r0, acc + i * kRows,
                      static_cast<std::size_t>(valid) * sizeof(float));
      }
    }
  });
}

void matmul_04_int8_packed(float* y, const float* x, const PackedMatrix& W, int n) {
  matmul_04_int8_packed(y, x, W, n, available_int8_paths().back());
}

}  // namespace llm::cpu::qmm
