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

// y[r] = dot(W[r, :], x) for R rows of W at once: R independent vector accumulators
// keep the FMA units busy while the rows stream in from memory.
template <int R>
inline void dot_rows(float* y, const float* W, const float* x, std::ptrdiff_t ld, int in) {
  v8f acc[R] = {};
  int k = 0;
  for (; k + 8 <= in; k += 8) {
    const v8f xv = load8(x + k);
    for (int r = 0; r < R; ++r) acc[r] += load8(W + r * ld + k) * xv;
  }
  for (int r = 0; r < R; ++r) {
    float s = sum8(acc[r]);
    for (int t = k; t < in; ++t) s += W[r * ld + t] * x[t];
    y[r] = s;
  }
}

// Sixteen floats as one value: one AVX-512 register where the CPU has them (-march=native), two
// AVX registers otherwise; either way each lane adds its products in the same order.
using v16f = float __attribute__((vector_size(64), aligned(4)));

template <class Vec>
inline Vec load_vec(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Up to `lanes` rows of x (given transposed: xt is [in, lanes], row i of x in lane i) against rows
// o0 .. o0+R-1 of W: y[i, o] for all lanes at once. Per k, one vector load of x, R scalar loads of
// W broadcast to a vector, and R fused multiply-adds; no horizontal sums. Every lane adds its
// products in the same order whatever the tile, so a row's result does not depend on the batch
// size. R accumulators, the x vector and a broadcast must fit the vector registers.
template <class Vec, int R>
inline void batch_tile(float* y, std::ptrdiff_t ldy, const float* W, const float* xt, std::ptrdiff_t ld, int in, int n,
                       int o0, int out) {
  constexpr int lanes = sizeof(Vec) / sizeof(float);
  const float* w[R];
  for (int r = 0; r < R; ++r) w[r] = W + std::min(o0 + r, out - 1) * ld;  // past the end: repeat the last row
  Vec acc[R] = {};
  for (int k = 0; k < in; ++k) {
    const Vec xv = load_vec<Vec>(xt + lanes * k);
    for (int r = 0; r < R; ++r) acc[r] += w[r][k] * xv;
  }
  const int rows = std::min(R, out - o0);
  for (int r = 0; r < rows; ++r) {
    for (int i = 0; i < n; ++i) y[i * ldy + o0 + r] = acc[r][i];
  }
}

// Rows of W per tile. AVX2 has 16 registers of 8 floats (a v16f takes two); AVX-512 has 32 of 16.
#if defined(__AVX512F__)
constexpr int kTileRows8 = 12, kTileRows16 = 12;
#else
constexpr int kTileRows8 = 12, kTileRows16 = 6;
#endif

// matmul_small_batch for one width of tile: chunks of `lanes` rows of x, each transposed once and
// met by every band of R rows of W.
template <class Vec, int R>
void small_batch(float* y, const float* x, const float* W, int n, int in, int out) {
  constexpr int lanes = sizeof(Vec) / sizeof(float);
  const std::ptrdiff_t ld = in, ldy = out;
  std::vector<float> xt(static_cast<std::size_t>(in) * lanes);
  for (int i0 = 0; i0 < n; i0 += lanes) {
    const int rows = std::min(lanes, n - i0);
    // Transpose this chunk of x so that one k gives a vector of its rows; unused lanes are 0.
    std::fill(xt.begin(), xt.end(), 0.0f);
    for (int i = 0; i < rows; ++i)
      for (int k = 0; k < in; ++k) xt[static_cast<std::size_t>(lanes * k + i)] = x[(i0 + i) * ld + k];
    const int blocks = (out + R - 1) / R;
    // Every lane is computed whether used or not: a band costs lanes * R * in multiply-adds.
    parallel_for(blocks, grain_for(std::int64_t{lanes} * R * in, kMinChunkWork), [&](std::int64_t b0, std::int64_t b1) {
      for (auto b = static_cast<int>(b0); b < b1; ++b)
        batch_tile<Vec, R>(y + i0 * ldy, ldy, W, xt.data(), ld, in, rows, b * R, out);
    });
  }
}

}  // namespace

void matvec_streaming(float* y, const float* x, const float* W, int in, int out) {
  // Each thread takes contiguous bands of W's rows and reads them from memory exactly once, eight
  // rows at a time: eight independent streams keep more loads in flight (measured on SmolLM2's
  // shapes: 27 GB/s against 26 GB/s with four rows).
  const std::ptrdiff_t ld = in;
  const int blocks = (out + 7) / 8;
  parallel_for(blocks, grain_for(8 * std::int64_t{in}, kMinChunkWork), [&](std::int64_t b0, std::int64_t b1) {
    for (auto b = static_cast<int>(b0); b < b1; ++b) {
      const int o0 = 8 * b;
      if (o0 + 8 <= out) {
        dot_rows<8>(y + o0, W + o0 * ld, x, ld, in);
      } else {
        for (int o = o0; o < out; ++o) dot_rows<1>(y + o, W + o * ld, x, ld, in);
      }
    }
  });
}

void matmul_small_batch(float* y, const float* x, const float* W, int n, int in, int out) {
  // Up to 8 rows need only half the lanes: half the arithmetic for the same weight reads.
  if (n <= 8) {
    small_batch<v8f, kTileRows8>(y, x, W, n, in, out);
  } else {
    small_batch<v16f, kTileRows16>(y, x, W, n, in, out);
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
  // Angles depend only on the pair index: compute each cos/sin once for all heads.
  std::vector<float> cs(static_cast<std::size_t>(half)), sn(static_cast<std::size_t>(half));
  for (int i = 0; i < half; ++i) {
    const double freq = std::pow(static_cast<double>(theta), -2.0 * i / head_dim);
    const double angle = pos * freq;
    cs[static_cast<std::size_t>(i)] = static_cast<float>(std::cos(angle));
    sn[static_cast<std::size_t>(i)] = static_cast<float>(std::sin(angle));
  }
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<std::ptrdiff_t>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      const float a = v[2 * i], b = v[2 * i + 1];
      v[2 * i] = a * cs[static_cast<std::size_t>(i)] - b * sn[static_cast<std::size_t>(i)];
      v[2 * i + 1] = a * sn[static_cast<std::size_t>(i)] + b * cs[static_cast<std::size_t>(i)];
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
  return static_cast<int>(std::max_element(x, x + n) - x);
}

}  // namespace llm::cpu
