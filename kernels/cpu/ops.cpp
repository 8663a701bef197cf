#include "kernels/cpu/ops.h"

#include "kernels/cpu/parallel.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace llm::cpu {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace {

// Eight floats as one value, for GCC and Clang's portable vector extension: the compiler maps
// it to one AVX register (or two SSE/NEON ones). aligned(4): loads need not be 32-byte aligned.
using v8f = float __attribute__((vector_size(32), aligned(4)));

inline v8f load8(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline float sum8(v8f v) {
  return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

// Sixteen floats as one value: one AVX-512 register where the CPU has them (-march=native), two
// AVX registers otherwise. The lanes are independent, so the result does not depend on which.
// Natural alignment for values (an under-aligned type kept GCC from holding them in registers);
// loads go through memcpy, which GCC and clang compile to one unaligned vector load (clang does
// not honour aligned(4) on a vector typedef: a cast to such a type was an aligned load that
// UBSan flagged and that crashed on an address not on 64 bytes).
using v16f = float __attribute__((vector_size(64)));

inline v16f load16(const float* p) {
  v16f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The one order in which every fp32 matmul output of ours is summed, whatever the number of rows
// in the step: lane j of a 16-float accumulator sums the products at k = j, j + 16, j + 32, ... in
// turn; the lanes are folded as sum8(lo + hi); the tail (in % 16 products) is added last, in order.
// So a request's row gives the same bits batched (matmul_small_batch) as alone (matvec_streaming).
inline float fold16(v16f v) {
  v8f lo, hi;
  std::memcpy(&lo, &v, sizeof lo);
  std::memcpy(&hi, reinterpret_cast<const float*>(&v) + 8, sizeof hi);
  return sum8(lo + hi);
}

// fold16 of sixteen accumulators at once: lane j of the result is fold16(a[j]) bit for bit (the
// same additions of the same values, done for sixteen accumulators per instruction instead of one
// at a time), so a full tile's outputs equal those of an edge tile or of matvec_streaming.
inline v16f fold16x16(const v16f (&a)[16]) {
  v16f t[8], s[4], u[2];
  // t = [lanes j + lanes j+8 of a[2p] | the same of a[2p+1]]
  for (int p = 0; p < 8; ++p) {
    t[p] =
        __builtin_shufflevector(a[2 * p], a[2 * p + 1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
        __builtin_shufflevector(a[2 * p], a[2 * p + 1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  }
  // s = per accumulator t_j + t_{j+4}, j < 4: four accumulators per vector
  for (int p = 0; p < 4; ++p) {
    s[p] = __builtin_shufflevector(t[2 * p], t[2 * p + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
           __builtin_shufflevector(t[2 * p], t[2 * p + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  }
  // u = per accumulator (s0 + s1, s2 + s3): eight accumulators per vector
  for (int p = 0; p < 2; ++p) {
    u[p] = __builtin_shufflevector(s[2 * p], s[2 * p + 1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
           __builtin_shufflevector(s[2 * p], s[2 * p + 1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  }
  // (s0 + s1) + (s2 + s3), sixteen accumulators in order
  return __builtin_shufflevector(u[0], u[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
         __builtin_shufflevector(u[0], u[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}

// y[i * ldy + o] = x_i . W_o for RO rows of W (o < RO, ld apart) and RI rows of x (ldx apart):
// RO * RI accumulators, so each vector of W loaded from memory meets RI rows of x and each vector
// of x meets RO rows of W, all in registers. Every output sees the same operations whatever RO
// and RI are (the order above), so tiles at the edges give the same bits as full ones.
// `next`, when not null, is the next band of RO rows of W: the cache lines of its rows p0 .. p1-1
// are requested (into L2, prefetcht2: 3-5% faster than into L1 on SmolLM2's step) while this tile
// computes, so the memory latency of a band overlaps the arithmetic of the one before.
template <int RO, int RI>
inline void dot_tile(float* y, std::ptrdiff_t ldy, const float* W, std::ptrdiff_t ld, const float* x,
                     std::ptrdiff_t ldx, int in, const float* next, int p0, int p1) {
  // The loops over o and i are fully unrolled: GCC keeps arrays of vectors in registers only when
  // every index is a constant (without the pragmas they went to the stack, 3x slower).
  v16f acc[RO][RI];
#pragma GCC unroll 16
  for (int o = 0; o < RO; ++o)
#pragma GCC unroll 16
    for (int i = 0; i < RI; ++i) acc[o][i] = v16f{};
  int k = 0;
  for (; k + 16 <= in; k += 16) {
    if (next != nullptr) {
      // Unrolled over all RO rows (a constant trip count, as matvec_streaming had before the
      // share-out), each row tested against this tile's share.
#pragma GCC unroll 16
      for (int o = 0; o < RO; ++o)
        if (o >= p0 && o < p1) __builtin_prefetch(next + o * ld + k, 0, 1);
    }
    v16f w[RO];
#pragma GCC unroll 16
    for (int o = 0; o < RO; ++o) w[o] = load16(W + o * ld + k);
#pragma GCC unroll 16
    for (int i = 0; i < RI; ++i) {
      const v16f xv = load16(x + i * ldx + k);
#pragma GCC unroll 16
      for (int o = 0; o < RO; ++o) acc[o][i] += w[o] * xv;
    }
  }
  if constexpr (RO * RI == 16) {
    v16f all[16];
#pragma GCC unroll 16
    for (int i = 0; i < RI; ++i)
#pragma GCC unroll 16
      for (int o = 0; o < RO; ++o) all[i * RO + o] = acc[o][i];
    const v16f folded = fold16x16(all);
    for (int i = 0; i < RI; ++i) {
      for (int o = 0; o < RO; ++o) {
        float s = folded[i * RO + o];
        for (int t = k; t < in; ++t) s += W[o * ld + t] * x[i * ldx + t];
        y[i * ldy + o] = s;
      }
    }
  } else {
    for (int o = 0; o < RO; ++o) {
      for (int i = 0; i < RI; ++i) {
        float s = fold16(acc[o][i]);
        for (int t = k; t < in; ++t) s += W[o * ld + t] * x[i * ldx + t];
        y[i * ldy + o] = s;
      }
    }
  }
}

// Tile sizes. AVX-512 has 32 registers of 16 floats: 4 x 4 accumulators, 4 of W and 1 of x fit.
// AVX2 has 16 of 8 floats, where a v16f takes two: 2 x 2 accumulators (8), 2 of W (4), 1 of x (2).
// matvec_streaming reads kStreamRows rows of W at once (eight independent streams kept more loads in
// flight than four on SmolLM2's shapes).
constexpr int kPortableTileW = 2, kPortableTileX = 2, kPortableStreamRows = 4;
#if defined(__AVX512F__)
constexpr int kTileW = 4, kTileX = 4, kStreamRows = 8;
#else
constexpr int kTileW = kPortableTileW, kTileX = kPortableTileX, kStreamRows = kPortableStreamRows;
#endif

// RO rows of W (o0 ..) against all n rows of x, RI at a time, the last group narrower. Only the
// first group reads this band from memory; the others find it in the cache. The prefetch of
// `next` (see dot_tile) is shared out among the groups, tile t of `tiles` taking rows
// t * RO / tiles .. (t + 1) * RO / tiles - 1: spread evenly over the band's arithmetic, the
// requests keep memory busy all along instead of in one burst during the first group (SmolLM2's
// batch-16 step, one thread: 13% less time than the first group prefetching all of it).
// `tile` is the index of this call's first group (dot_band calls itself for the narrower ones).
template <int RO, int RI>
inline void dot_band(float* y, std::ptrdiff_t ldy, const float* W, std::ptrdiff_t ld, const float* x,
                     std::ptrdiff_t ldx, int n, int in, const float* next, int tile, int tiles) {
  int i = 0;
  for (; i + RI <= n; i += RI, ++tile) {
    const int p0 = std::min(RO, tile * RO / tiles), p1 = std::min(RO, (tile + 1) * RO / tiles);
    dot_tile<RO, RI>(y + i * ldy, ldy, W, ld, x + i * ldx, ldx, in, next, p0, p1);
  }
  if constexpr (RI > 1) {
    const int left = n - i;
    if (left > 0) {
      // One narrower tile for the rows left over (RI - 1 at most).
      if constexpr (RI > 2) {
        if (left >= RI / 2) {
          dot_band<RO, RI / 2>(y + i * ldy, ldy, W, ld, x + i * ldx, ldx, left, in, next, tile, tiles);
          return;
        }
      }
      dot_band<RO, 1>(y + i * ldy, ldy, W, ld, x + i * ldx, ldx, left, in, next, tile, tiles);
    }
  }
}

// y[n, out] = x W^T with threads sharing W's rows in bands of RO: each band is read from memory
// once per call and meets every row of x from the cache.
template <int RO, int RI>
void matmul_bands(float* y, const float* x_in, const float* W, int n, int in, int out) {
  const std::ptrdiff_t ld = in, ldy = out;
  // x is copied to a 64-byte aligned buffer, each row starting on a cache line: a 16-float load
  // that straddles two lines costs two (measured: n = 16, in = 576, W in cache, 87 -> 112 GFLOP/s).
  // W is read where it lies (its rows share one offset from a line when `in` is a multiple of 16).
  // Where the values sit does not change the order of the sums.
  const std::ptrdiff_t ldx = (ld + 15) / 16 * 16;
  thread_local std::vector<v16f> aligned_x;
  const auto vectors = static_cast<std::size_t>(n * ldx / 16);
  if (aligned_x.size() < vectors) aligned_x.resize(vectors);
  float* x = reinterpret_cast<float*>(aligned_x.data());
  for (int i = 0; i < n; ++i) std::memcpy(x + i * ldx, x_in + i * ld, sizeof(float) * static_cast<std::size_t>(in));
  const int full = out / RO, bands = (out + RO - 1) / RO;
  const int tiles = (n + RI - 1) / RI;  // groups of x rows per band, the narrower last one included
  parallel_for(bands, grain_for(std::int64_t{RO} * n * in, kMinChunkWork), [&](std::int64_t b0, std::int64_t b1) {
    for (auto b = static_cast<int>(b0); b < b1; ++b) {
      const int o0 = b * RO;
      if (b < full) {
        const float* next = b + 1 < full ? W + (o0 + RO) * ld : nullptr;
        dot_band<RO, RI>(y + o0, ldy, W + o0 * ld, ld, x, ldx, n, in, next, 0, tiles);
      } else {
        for (int o = o0; o < out; ++o) dot_band<1, RI>(y + o, ldy, W + o * ld, ld, x, ldx, n, in, nullptr, 0, tiles);
      }
    }
  });
}

}  // namespace

void matvec_streaming(float* y, const float* x, const float* W, int in, int out) {
  // Each thread takes contiguous bands of W's rows and reads them from memory exactly once.
  matmul_bands<kStreamRows, 1>(y, x, W, 1, in, out);
}

void matmul_small_batch(float* y, const float* x, const float* W, int n, int in, int out) {
  matmul_bands<kTileW, kTileX>(y, x, W, n, in, out);
}

void matmul_portable_tiles(float* y, const float* x, const float* W, int n, int in, int out) {
  if (n == 1) {
    matmul_bands<kPortableStreamRows, 1>(y, x, W, 1, in, out);
  } else {
    matmul_bands<kPortableTileW, kPortableTileX>(y, x, W, n, in, out);
  }
}

void matmul_blocked(float* y, const float* x, const float* W, int n, int in, int out) {
  // Eigen's blocked GEMM on one thread per band of W's rows (Y's columns): the threads are ours
  // (parallel.h), not Eigen's OpenMP team, which stalls when a thread is descheduled.
  constexpr int kBand = 16;
  const int bands = (out + kBand - 1) / kBand;
  Eigen::Map<const RowMatrix> X(x, n, in);
  Eigen::Map<const RowMatrix> Wm(W, out, in);
  Eigen::Map<RowMatrix> Y(y, n, out);
  parallel_for(bands, grain_for(std::int64_t{kBand} * n * in, 4 * kMinChunkWork),
               [&](std::int64_t b0, std::int64_t b1) {
                 const auto o0 = static_cast<Eigen::Index>(b0 * kBand);
                 const Eigen::Index cols = std::min<Eigen::Index>(out, b1 * kBand) - o0;
                 Y.middleCols(o0, cols).noalias() = X * Wm.middleRows(o0, cols).transpose();
               });
}

void matmul(float* y, const float* x, const float* W, int n, int in, int out) {
  if (n == 1) {
    matvec_streaming(y, x, W, in, out);
  } else if (n <= kSmallBatchRows) {
    matmul_small_batch(y, x, W, n, in, out);
  } else {
    matmul_blocked(y, x, W, n, in, out);
  }
}

void rmsnorm(float* y, const float* x, const float* weight, int n, int dim, float eps) {
  Eigen::Map<const Eigen::ArrayXf> w(weight, dim);
  for (int r = 0; r < n; ++r) {
    Eigen::Map<const Eigen::ArrayXf> xr(x + static_cast<std::ptrdiff_t>(r) * dim, dim);
    // Accumulate the mean square in double: long rows of fp32 lose digits otherwise. A plain loop,
    // not Eigen's reduction, whose order depends on the row's address (its vectorised part starts
    // at the first aligned element): the same tokens must give the same logits in every call.
    double ss = 0.0;
    for (int i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * static_cast<double>(xr[i]);
    const double ms = ss / dim;
    const float scale = static_cast<float>(1.0 / std::sqrt(ms + static_cast<double>(eps)));
    Eigen::Map<Eigen::ArrayXf>(y + static_cast<std::ptrdiff_t>(r) * dim, dim) = xr * scale * w;
  }
}

void rope(float* x, int n_heads, int head_dim, int pos, float theta) {
  const int half = head_dim / 2;
  // Angles depend only on the pair index and the position: each cos/sin is computed once per
  // position (for all heads, for q and k, for every layer) and kept in a table per thread,
  // filled as positions appear (one pow and one sincos per pair were 1% of a batch-16 step).
  struct Angles {
    int head_dim = -1;
    float theta = 0.0f;
    std::vector<float> cs, sn;  // [pos, half]
    std::vector<char> filled;   // [pos]
  };
  constexpr int kTablePositions = 1 << 15;  // beyond, angles are computed per call (a few MiB at most)
  thread_local Angles t;
  thread_local std::vector<float> one_cs, one_sn;
  if (t.head_dim != head_dim || t.theta != theta) t = Angles{head_dim, theta, {}, {}, {}};
  const auto h2 = static_cast<std::size_t>(half);
  float *cs, *sn;
  bool fill = true;
  if (pos >= 0 && pos < kTablePositions) {
    const auto p = static_cast<std::size_t>(pos);
    if (t.filled.size() <= p) {
      t.filled.resize(p + 1, 0);
      t.cs.resize((p + 1) * h2);
      t.sn.resize((p + 1) * h2);
    }
    cs = t.cs.data() + p * h2;
    sn = t.sn.data() + p * h2;
    fill = !t.filled[p];
    t.filled[p] = 1;
  } else {
    one_cs.resize(h2);
    one_sn.resize(h2);
    cs = one_cs.data();
    sn = one_sn.data();
  }
  if (fill) {
    for (int i = 0; i < half; ++i) {
      const double freq = std::pow(static_cast<double>(theta), -2.0 * i / head_dim);
      const double angle = pos * freq;
      cs[i] = static_cast<float>(std::cos(angle));
      sn[i] = static_cast<float>(std::sin(angle));
    }
  }
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<std::ptrdiff_t>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      const float a = v[2 * i], b = v[2 * i + 1];
      v[2 * i] = a * cs[i] - b * sn[i];
      v[2 * i + 1] = a * sn[i] + b * cs[i];
    }
  }
}

float dot(const float* a, const float* b, int n) {
  v8f acc0 = {}, acc1 = {};
  int k = 0;
  for (; k + 16 <= n; k += 16) {
    acc0 += load8(a + k) * load8(b + k);
    acc1 += load8(a + k + 8) * load8(b + k + 8);
  }
  if (k + 8 <= n) {
    acc0 += load8(a + k) * load8(b + k);
    k += 8;
  }
  float s = sum8(acc0 + acc1);
  for (; k < n; ++k) s += a[k] * b[k];
  return s;
}

void softmax(float* x, int n) {
  // Through an aligned buffer, not in place: Eigen runs a scalar std::exp on the elements before
  // the first aligned address and its vectorised exp on the rest, which differ in the last bit,
  // so the same scores at another address would give other probabilities. The sum runs in a fixed
  // order too (see rmsnorm): the same tokens give the same logits in every call and every engine.
  thread_local Eigen::ArrayXf buf;
  if (buf.size() < n) buf.resize(std::max<Eigen::Index>(n, 2 * buf.size()));
  const Eigen::Map<const Eigen::ArrayXf> in(x, n);
  auto a = buf.head(n);
  a = (in - in.maxCoeff()).exp();
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) sum += a[i];
  Eigen::Map<Eigen::ArrayXf>(x, n) = a / sum;
}

void swiglu(float* out, const float* gate, const float* up, std::size_t n) {
  // exp through an aligned buffer, as in softmax: the same gate values give the same outputs
  // wherever they sit in memory.
  const auto len = static_cast<Eigen::Index>(n);
  thread_local Eigen::ArrayXf buf;
  if (buf.size() < len) buf.resize(std::max<Eigen::Index>(len, 2 * buf.size()));
  Eigen::Map<const Eigen::ArrayXf> g(gate, len), u(up, len);
  auto e = buf.head(len);
  e = (-g).exp();
  Eigen::Map<Eigen::ArrayXf>(out, len) = g / (1.0f + e) * u;
}

void causal_attention(float* out, const float* q, const float* k, const float* v, int n, int n_heads, int n_kv_heads,
                      int head_dim) {
  const int group = n_heads / n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const std::ptrdiff_t q_stride = static_cast<std::ptrdiff_t>(n_heads) * head_dim;
  const std::ptrdiff_t kv_stride = static_cast<std::ptrdiff_t>(n_kv_heads) * head_dim;
  // One head at a time: the keys of a kv head, seen as a strided [n, head_dim] matrix, score
  // all queries of that head in one product; rows past the diagonal are masked out.
  using Strided = Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>>;
  const std::int64_t per_head = std::int64_t{n} * n * head_dim;  // the two products, about n^2 * head_dim each
  parallel_for(n_heads, grain_for(per_head, kMinChunkWork), [&](std::int64_t h0, std::int64_t h1) {
    for (auto h = static_cast<int>(h0); h < h1; ++h) {
      const int kvh = h / group;
      Strided Q(q + static_cast<std::ptrdiff_t>(h) * head_dim, n, head_dim, Eigen::OuterStride<>(q_stride));
      Strided K(k + static_cast<std::ptrdiff_t>(kvh) * head_dim, n, head_dim, Eigen::OuterStride<>(kv_stride));
      Strided V(v + static_cast<std::ptrdiff_t>(kvh) * head_dim, n, head_dim, Eigen::OuterStride<>(kv_stride));
      RowMatrix S = (Q * K.transpose()) * scale;  // [n, n]
      for (int i = 0; i < n; ++i) {
        for (int j = i + 1; j < n; ++j) S(i, j) = -INFINITY;
        softmax(S.row(i).data(), i + 1);
        for (int j = i + 1; j < n; ++j) S(i, j) = 0.0f;
      }
      Eigen::Map<RowMatrix, 0, Eigen::OuterStride<>> O(out + static_cast<std::ptrdiff_t>(h) * head_dim, n, head_dim,
                                                       Eigen::OuterStride<>(q_stride));
      O.noalias() = S * V;
    }
  });
}

int argmax(const float* x, int n) {
  if (n <= 0) return 0;
  // The largest value sixteen lanes at a time, then the first element equal to it: two passes
  // that vectorise, instead of std::max_element's one that does not (greedy decoding runs this
  // on every row of logits, 49,152 floats for SmolLM2). A NaN compares false both ways, so any
  // NaN sends the row to std::max_element, whose answer for it is the reference.
  v16f mx, nan_seen = v16f{};
  int k = 0;
  if (n >= 16) {
    mx = load16(x);
    for (k = 16; k + 16 <= n; k += 16) {
      const v16f v = load16(x + k);
      mx = v > mx ? v : mx;
      nan_seen += v != v ? v16f{} + 1.0f : v16f{};
    }
    nan_seen += mx != mx ? v16f{} + 1.0f : v16f{};
  }
  float m = n >= 16 ? mx[0] : x[0];
  bool nan = false;
  for (int j = 0; j < 16 && n >= 16; ++j) {
    m = std::max(m, mx[j]);
    nan = nan || nan_seen[j] != 0.0f;
  }
  for (; k < n; ++k) {
    m = std::max(m, x[k]);
    nan = nan || std::isnan(x[k]);
  }
  if (!nan) {
    for (int i = 0; i < n; ++i)
      if (x[i] == m) return i;
  }
  return static_cast<int>(std::max_element(x, x + n) - x);
}

}  // namespace llm::cpu
