// Version 03: activations quantized too ("W8A8" / "W4A8", llama.cpp's Q8_0 x Q8_0 and Q4 x Q8_1
// scheme). Each block of 32 activations becomes int8 qx with a scale dx = max|x| / 127, and
//   sum_j w_j x_j  ~  d dx sum_j q_j qx_j  +  m dx sum_j qx_j
// where q_j are the weight's small integers (block_view.h). The first sum is an integer dot of 32
// byte pairs, one or two instructions on x86:
//   AVX2        maddubs (u8 x s8 -> pairs summed to s16) then madd by ones (-> s32)
//   AVX-VNNI /  dpbusd (u8 x s8, four products summed into each s32 lane, one instruction)
//   AVX-512 VNNI (its 256-bit form, AVX512VL)
// maddubs and dpbusd take one unsigned operand: Q4 nibbles are unsigned already; for Q8_0 the
// sign moves onto x (|q| and sign(q) * qx), as llama.cpp does. The scalar path is the definition.
// The path is picked at run time from cpuid (available_int8_paths), so one build runs anywhere.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/quant_matmul/block_view.h"
#include "kernels/cpu/quant_matmul/int8_activations.h"
#include "kernels/cpu/quant_matmul/int8_build.h"
#include "kernels/cpu/quant_matmul/quant_matmul.h"

#if LLM_X86
#include <cpuid.h>
#endif

namespace llm::cpu::qmm {

namespace {

constexpr int kTileRows = 16;

// The 32 weight integers of a block as bytes, in element order: Q8_0's int8 as stored, Q4's
// nibbles unpacked (element j < 16 in the low nibble of byte j, element j + 16 in its high nibble).
inline void weight_bytes(TensorType t, const std::uint8_t* block, std::uint8_t* out) {
  if (t == TensorType::Q8_0) {
    std::memcpy(out, block + 2, 32);
    return;
  }
  const std::uint8_t* qs = block + (t == TensorType::Q4_1 ? 4 : 2);
  for (int j = 0; j < 16; ++j) {
    out[j] = qs[j] & 0x0F;
    out[j + 16] = qs[j] >> 4;
  }
}

// ---- the integer block dot, one function per path: sum_j q_j * qx_j over 32 elements
// (q signed for Q8_0, unsigned nibbles for Q4).

// Kept scalar: it is the definition the other paths are checked against, and GCC 12.2 with
// -march=native on an AVX-512 VNNI CPU vectorises the signed x signed loop into vpdpbusd, whose first
// operand is unsigned (wrong sums for negative weights; seen with Debian's 12.2.0).
LLM_NO_VECTORIZE std::int32_t block_dot_scalar(bool signed_w, const std::uint8_t* w, const std::int8_t* x) {
  std::int32_t s = 0;
  if (signed_w) {
    for (int j = 0; j < 32; ++j) s += static_cast<std::int8_t>(w[j]) * x[j];
  } else {
    for (int j = 0; j < 32; ++j) s += w[j] * x[j];
  }
  return s;
}

#if LLM_X86
__attribute__((target("avx2"))) inline std::int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// The unsigned and signed operands: for signed weights, |w| and x with w's sign.
__attribute__((target("avx2"))) inline void operands(bool signed_w, __m256i w, __m256i x, __m256i& u, __m256i& s) {
  if (signed_w) {
    u = _mm256_sign_epi8(w, w);
    s = _mm256_sign_epi8(x, w);
  } else {
    u = w;
    s = x;
  }
}

__attribute__((target("avx2"))) std::int32_t block_dot_avx2(bool signed_w, const std::uint8_t* w,
                                                            const std::int8_t* x) {
  __m256i u, s;
  operands(signed_w, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)),
           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)), u, s);
  // |w| <= 128 and |x| <= 127: a pair of products fits int16 (maddubs saturates only past 32767).
  const __m256i pairs = _mm256_maddubs_epi16(u, s);
  return hsum_i32(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

__attribute__((target("avx2,avxvnni"))) std::int32_t block_dot_avxvnni(bool signed_w, const std::uint8_t* w,
                                                                       const std::int8_t* x) {
  __m256i u, s;
  operands(signed_w, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)),
           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)), u, s);
  return hsum_i32(_mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s));
}

__attribute__((target("avx2,avx512f,avx512vl,avx512vnni"))) std::int32_t block_dot_avx512vnni(bool signed_w,
                                                                                              const std::uint8_t* w,
                                                                                              const std::int8_t* x) {
  __m256i u, s;
  operands(signed_w, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)),
           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)), u, s);
  return hsum_i32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s));
}
#endif

using BlockDot = std::int32_t (*)(bool, const std::uint8_t*, const std::int8_t*);

BlockDot block_dot_for(Int8Path p) {
  switch (p) {
    case Int8Path::Scalar:
      return block_dot_scalar;
#if LLM_X86
    case Int8Path::Avx2:
      return block_dot_avx2;
    case Int8Path::AvxVnni:
      return block_dot_avxvnni;
    case Int8Path::Avx512Vnni:
      return block_dot_avx512vnni;
#else
    default:
      break;
#endif
  }
  throw std::invalid_argument(std::string("quant_matmul: path ") + int8_path_name(p) + " is not built for this CPU");
}

}  // namespace

const char* int8_path_name(Int8Path p) {
  switch (p) {
    case Int8Path::Scalar:
      return "scalar";
    case Int8Path::Avx2:
      return "avx2";
    case Int8Path::AvxVnni:
      return "avx-vnni";
    case Int8Path::Avx512Vnni:
      return "avx512-vnni";
  }
  return "?";
}

namespace {
std::vector<Int8Path> detect_int8_paths() {
  std::vector<Int8Path> paths{Int8Path::Scalar};
#if LLM_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) paths.push_back(Int8Path::Avx2);
  // AVX-VNNI is CPUID leaf 7, subleaf 1, EAX bit 4 (clang 14's __builtin_cpu_supports has no name for it).
  unsigned a = 0, b = 0, c = 0, d = 0;
  const bool avxvnni = __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4)) != 0;
  if (__builtin_cpu_supports("avx2") && avxvnni) paths.push_back(Int8Path::AvxVnni);
  if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl")) paths.push_back(Int8Path::Avx512Vnni);
#endif
  return paths;
}
}  // namespace

std::vector<Int8Path> available_int8_paths() {
  // Asked once: under a hypervisor every cpuid traps (KVM: ~15% of a SmolLM2 decode step when
  // each matmul asked again).
  static const std::vector<Int8Path> paths = detect_int8_paths();
  return paths;
}

void matmul_03_int8(float* y, const float* x, const QuantMatrix& W, int n, Int8Path path) {
  W.validate();
  const auto paths = available_int8_paths();
  if (std::find(paths.begin(), paths.end(), path) == paths.end())
    throw std::invalid_argument(std::string("quant_matmul: this CPU cannot run the ") + int8_path_name(path) + " path");
  const BlockDot block_dot = block_dot_for(path);
  const std::size_t rb = W.row_bytes();
  const int blocks = W.in / 32;
  const std::size_t bb = rb / static_cast<std::size_t>(blocks);
  const bool signed_w = W.type == TensorType::Q8_0;
  const detail::Int8Activations qx = detail::quantize_activations(x, n, W.in);
  parallel_for(W.out, grain_for(std::int64_t{W.in} * n, kMinChunkWork), [&](std::int64_t o0, std::int64_t o1) {
    std::uint8_t wq[32];
    for (auto o = o0; o < o1; ++o) {
      const std::uint8_t* row = W.data + static_cast<std::size_t>(o) * rb;
      for (int i0 = 0; i0 < n; i0 += kTileRows) {
        const int rows = std::min(kTileRows, n - i0);
        float acc[kTileRows] = {};
        for (int b = 0; b < blocks; ++b) {
          const std::uint8_t* blk = row + static_cast<std::size_t>(b) * bb;
          const float d = detail::load_fp16(blk);
          const float m = W.type == TensorType::Q4_1   ? detail::load_fp16(blk + 2)
                          : W.type == TensorType::Q4_0 ? -8.0f * d
                                                       : 0.0f;
          weight_bytes(W.type, blk, wq);
          for (int i = 0; i < rows; ++i) {
            const auto bi =
                static_cast<std::size_t>(i0 + i) * static_cast<std::size_t>(blocks) + static_cast<std::size_t>(b);
            const std::int32_t dotq = block_dot(signed_w, wq, qx.q.data() + bi * 32);
            acc[i] += qx.d[bi] * (d * static_cast<float>(dotq) + m * static_cast<float>(qx.s[bi]));
          }
        }
        for (int i = 0; i < rows; ++i) y[static_cast<std::size_t>(i0 + i) * W.out + o] = acc[i];
      }
    }
  });
}

void matmul_03_int8(float* y, const float* x, const QuantMatrix& W, int n) {
  matmul_03_int8(y, x, W, n, available_int8_paths().back());
}

}  // namespace llm::cpu::qmm
