// Version 02: dequantize in registers, fused with the dot ("W8A32" / "W4A32"): each block of 32
// weights is turned into floats (w = q d + m) in four vector registers and multiplied at once with
// every row of x; W is read from memory once, as stored, and no fp32 copy of it is ever written.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/quant_matmul/block_view.h"
#include "kernels/cpu/quant_matmul/quant_matmul.h"

namespace llm::cpu::qmm {

namespace {

constexpr int kTileRows = 16;  // rows of x that meet each block of W while it is in registers

using v8f = float __attribute__((vector_size(32), aligned(4)));

inline v8f load8(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Small integer vectors for the stored weights. They are widened to int32 lanes, then to floats:
// vpmovsxbd / vpmovzxbd + vcvtdq2ps on x86 (GCC 12 turns a direct int8 -> float conversion into
// eight scalar ones).
using v8u8 = std::uint8_t __attribute__((vector_size(8)));
using v8i32 = std::int32_t __attribute__((vector_size(32)));

template <class V>
inline v8f to_floats(V v) {
  return __builtin_convertvector(__builtin_convertvector(v, v8i32), v8f);
}

template <class V>
inline V load_bytes(const std::uint8_t* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The 32 weights of one block as four vectors of floats, w = q d + m (block_view.h has the layouts).
inline void decode_block(TensorType t, const std::uint8_t* p, v8f w[4]) {
  const float d = detail::load_fp16(p);
  if (t == TensorType::Q8_0) {
    // Signed bytes through the unsigned widening (GCC 12 sign-extends lane by lane): q = (q ^ 0x80) - 128.
    for (int v = 0; v < 4; ++v) w[v] = (to_floats(load_bytes<v8u8>(p + 2 + 8 * v) ^ 0x80) - 128.0f) * d;
    return;
  }
  const std::uint8_t* qs = p + (t == TensorType::Q4_1 ? 4 : 2);
  const float m = t == TensorType::Q4_1 ? detail::load_fp16(p + 2) : -8.0f * d;
  // Bytes 0..15 hold elements j (low nibble) and j + 16 (high nibble).
  for (int half = 0; half < 2; ++half) {
    const v8u8 b = load_bytes<v8u8>(qs + 8 * half);
    w[half] = to_floats(b & 0x0F) * d + m;
    w[half + 2] = to_floats(b >> 4) * d + m;
  }
}

}  // namespace

void matmul_02_fused(float* y, const float* x, const QuantMatrix& W, int n) {
  W.validate();
  const std::size_t rb = W.row_bytes();
  const int blocks = W.in / 32;
  const std::size_t bb = rb / static_cast<std::size_t>(blocks);
  parallel_for(W.out, grain_for(std::int64_t{W.in} * n, kMinChunkWork), [&](std::int64_t o0, std::int64_t o1) {
    for (auto o = o0; o < o1; ++o) {
      const std::uint8_t* row = W.data + static_cast<std::size_t>(o) * rb;
      for (int i0 = 0; i0 < n; i0 += kTileRows) {
        const int rows = std::min(kTileRows, n - i0);
        // Per row of x, eight partial sums in one vector register, across all blocks.
        v8f acc[kTileRows] = {};
        for (int b = 0; b < blocks; ++b) {
          // The block's 32 weights as floats, w = q d + m: in registers (and L1), never in memory.
          v8f w[4];
          decode_block(W.type, row + static_cast<std::size_t>(b) * bb, w);
          for (int i = 0; i < rows; ++i) {
            const float* xb = x + static_cast<std::size_t>(i0 + i) * W.in + b * 32;
            acc[i] += w[0] * load8(xb) + w[1] * load8(xb + 8) + w[2] * load8(xb + 16) + w[3] * load8(xb + 24);
          }
        }
        for (int i = 0; i < rows; ++i) {
          const v8f a = acc[i];
          y[static_cast<std::size_t>(i0 + i) * W.out + o] =
              ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
        }
      }
    }
  });
}

}  // namespace llm::cpu::qmm
