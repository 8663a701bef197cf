// kernels/cpu ops against straightforward double-precision twins written here, on fresh random
// inputs at real and awkward shapes, with outputs poisoned first.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstring>
#include <random>
#include <string>

#include "kernels/cpu/ops.h"
#include "kernels/harness/compare.h"

using namespace llm;

namespace {
std::vector<float> randn(std::size_t n, std::mt19937_64& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
void expect_close(const std::vector<float>& got, const std::vector<double>& want, std::size_t cols, double tol) {
  const auto cmp = harness::compare_rows(got, std::vector<float>(want.begin(), want.end()), cols, tol);
  INFO(cmp.report);
  CHECK(cmp.ok);
}
}  // namespace

TEST_CASE("matmul: y = x W^T (streaming, blocked, and the dispatch between them)", "[ops]") {
  std::mt19937_64 rng(1);
  using Kernel = void (*)(float*, const float*, const float*, int, int, int);
  auto matvec = [](float* y, const float* x, const float* W, int n, int in, int out) {
    for (int i = 0; i < n; ++i) cpu::matvec_streaming(y + i * out, x + i * in, W, in, out);
  };
  const std::pair<const char*, Kernel> kernels[] = {{"matmul", cpu::matmul},
                                                    {"matvec_streaming", matvec},
                                                    {"matmul_small_batch", cpu::matmul_small_batch},
                                                    {"matmul_portable_tiles", cpu::matmul_portable_tiles},
                                                    {"matmul_blocked", cpu::matmul_blocked}};
  // Row counts on both sides of kSmallBatchRows and of a 16-row chunk; in not a multiple of 8,
  // out not a multiple of 4 or 6.
  // The last four are large enough to be shared among threads (kernels/cpu/parallel.h), on both
  // sides of the 8-row tile of matmul_small_batch.
  for (auto [n, in, out] : {std::tuple{1, 576, 192},
                            {7, 13, 29},
                            {33, 64, 1},
                            {5, 1, 5},
                            {2, 35, 6},
                            {16, 71, 9},
                            {17, 40, 13},
                            {3, 8, 4},
                            {1, 1000, 2051},
                            {8, 576, 771},
                            {9, 300, 1537},
                            {40, 256, 999}}) {
    const auto x = randn(static_cast<std::size_t>(n * in), rng), W = randn(static_cast<std::size_t>(out * in), rng);
    std::vector<double> want(static_cast<std::size_t>(n * out));
    for (int r = 0; r < n; ++r)
      for (int o = 0; o < out; ++o) {
        double s = 0;
        for (int i = 0; i < in; ++i)
          s += static_cast<double>(x[static_cast<std::size_t>(r * in + i)]) * W[static_cast<std::size_t>(o * in + i)];
        want[static_cast<std::size_t>(r * out + o)] = s;
      }
    for (const auto& [name, kernel] : kernels) {
      std::vector<float> y(want.size());
      harness::poison(y);
      kernel(y.data(), x.data(), W.data(), n, in, out);
      INFO(name << ": n=" << n << " in=" << in << " out=" << out);
      expect_close(y, want, static_cast<std::size_t>(out), 1e-4);  // fp32 sums in another order
    }
  }
}

// What makes batching leave a request's logits alone: a row of x gives the same bits through
// matmul_small_batch in a batch of any size (full and edge tiles alike), through the portable
// tiles (2 x 2, as a build without AVX-512 runs them) and alone through matvec_streaming.
TEST_CASE("matmul: a row's result does not depend on the batch or the tiles, bit for bit", "[ops]") {
  std::mt19937_64 rng(2);
  // in: below, at and around the 16-float vector, with and without a tail; out: not a multiple of
  // the 4- or 8-row bands, and large enough for several threads' chunks.
  for (auto [in, out] : {std::pair{1, 3}, {15, 7}, {16, 9}, {17, 33}, {47, 21}, {64, 130}, {576, 77}, {300, 1031}}) {
    const int max_n = cpu::kSmallBatchRows;
    const auto x = randn(static_cast<std::size_t>(max_n * in), rng), W = randn(static_cast<std::size_t>(out * in), rng);
    std::vector<float> alone(static_cast<std::size_t>(max_n * out));
    for (int i = 0; i < max_n; ++i)
      cpu::matvec_streaming(&alone[static_cast<std::size_t>(i * out)], &x[static_cast<std::size_t>(i * in)], W.data(),
                            in, out);
    for (int n = 1; n <= max_n; ++n) {
      using Kernel = void (*)(float*, const float*, const float*, int, int, int);
      const std::pair<const char*, Kernel> kernels[] = {{"matmul", cpu::matmul},
                                                        {"matmul_portable_tiles", cpu::matmul_portable_tiles}};
      for (const auto& [name, kernel] : kernels) {
        std::vector<float> y(static_cast<std::size_t>(n * out));
        harness::poison(y);
        kernel(y.data(), x.data(), W.data(), n, in, out);
        std::size_t bad = 0, first = 0;
        for (std::size_t e = 0; e < y.size(); ++e) {
          if (std::memcmp(&y[e], &alone[e], sizeof(float)) != 0 && bad++ == 0) first = e;
        }
        INFO(name << ": n=" << n << " in=" << in << " out=" << out << ": " << bad
                  << " outputs differ from matvec_streaming's"
                  << (bad ? ", first at row " + std::to_string(first / static_cast<std::size_t>(out)) + " column " +
                                std::to_string(first % static_cast<std::size_t>(out)) + ": " +
                                std::to_string(y[first]) + " vs " + std::to_string(alone[first])
                          : std::string()));
        CHECK(bad == 0);
      }
    }
  }
}

TEST_CASE("dot at every length around the vector widths", "[ops]") {
  std::mt19937_64 rng(3);
  for (int n = 0; n <= 70; ++n) {
    const auto a = randn(static_cast<std::size_t>(n), rng), b = randn(static_cast<std::size_t>(n), rng);
    double want = 0, scale = 0;
    for (int i = 0; i < n; ++i) {
      want += static_cast<double>(a[static_cast<std::size_t>(i)]) * b[static_cast<std::size_t>(i)];
      scale += std::abs(static_cast<double>(a[static_cast<std::size_t>(i)]) * b[static_cast<std::size_t>(i)]);
    }
    const float got = cpu::dot(a.data(), b.data(), n);
    INFO("n=" << n << " got " << got << " want " << want);
    CHECK(std::isfinite(got));
    CHECK(std::abs(got - want) <= 1e-5 * (scale + 1e-30));
  }
}

TEST_CASE("rmsnorm", "[ops]") {
  std::mt19937_64 rng(2);
  for (auto [n, dim] : {std::pair{1, 576}, {5, 37}, {3, 1}}) {
    const auto x = randn(static_cast<std::size_t>(n * dim), rng, 3.0f), w = randn(static_cast<std::size_t>(dim), rng);
    std::vector<float> y(x.size());
    harness::poison(y);
    cpu::rmsnorm(y.data(), x.data(), w.data(), n, dim, 1e-5f);
    std::vector<double> want(y.size());
    for (int r = 0; r < n; ++r) {
      double ss = 0;
      for (int i = 0; i < dim; ++i) ss += std::pow(static_cast<double>(x[static_cast<std::size_t>(r * dim + i)]), 2);
      const double inv = 1.0 / std::sqrt(ss / dim + 1e-5);
      for (int i = 0; i < dim; ++i)
        want[static_cast<std::size_t>(r * dim + i)] =
            x[static_cast<std::size_t>(r * dim + i)] * inv * w[static_cast<std::size_t>(i)];
    }
    expect_close(y, want, static_cast<std::size_t>(dim), 1e-6);
  }
}

TEST_CASE("rope rotates pairs as complex numbers e^{i pos theta^(-2i/d)}", "[ops]") {
  std::mt19937_64 rng(3);
  for (auto [heads, hd, pos, theta] :
       // The angles are kept per position and shape (a table per thread): positions again, out of
       // order, after another shape, and one past the table (1 << 15) must rotate as the first time.
       {std::tuple{9, 64, 17, 100000.0f}, {3, 6, 0, 10000.0f}, {2, 10, 1000, 10000.0f}, {9, 64, 17, 100000.0f},
        {9, 64, 3, 100000.0f}, {9, 64, 17, 10000.0f}, {2, 10, 40000, 10000.0f}, {2, 10, 1000, 10000.0f}}) {
    auto x = randn(static_cast<std::size_t>(heads * hd), rng);
    const auto orig = x;
    cpu::rope(x.data(), heads, hd, pos, theta);
    std::vector<double> want(x.size());
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < hd / 2; ++i) {
        const std::complex<double> z(orig[static_cast<std::size_t>(h * hd + 2 * i)],
                                     orig[static_cast<std::size_t>(h * hd + 2 * i + 1)]);
        const auto r = z * std::polar(1.0, pos * std::pow(static_cast<double>(theta), -2.0 * i / hd));
        want[static_cast<std::size_t>(h * hd + 2 * i)] = r.real();
        want[static_cast<std::size_t>(h * hd + 2 * i + 1)] = r.imag();
      }
    expect_close(x, want, static_cast<std::size_t>(hd), 1e-5);
  }
}

TEST_CASE("softmax and swiglu", "[ops]") {
  std::mt19937_64 rng(4);
  auto x = randn(1001, rng, 20.0f);  // large values: the max must be subtracted
  const auto orig = x;
  cpu::softmax(x.data(), 1001);
  double mx = -1e300, sum = 0;
  for (float v : orig) mx = std::max(mx, static_cast<double>(v));
  for (float v : orig) sum += std::exp(v - mx);
  std::vector<double> want;
  for (float v : orig) want.push_back(std::exp(v - mx) / sum);
  expect_close(x, want, 1001, 1e-5);

  const auto g = randn(77, rng, 4.0f), u = randn(77, rng);
  std::vector<float> out(77);
  harness::poison(out);
  cpu::swiglu(out.data(), g.data(), u.data(), 77);
  std::vector<double> w2;
  for (std::size_t i = 0; i < 77; ++i) w2.push_back(g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * u[i]);
  expect_close(out, w2, 77, 1e-6);
}

TEST_CASE("causal grouped-query attention", "[ops]") {
  std::mt19937_64 rng(5);
  for (auto [n, heads, kv, hd] : {std::tuple{1, 4, 2, 8}, {13, 9, 3, 64}, {7, 7, 1, 6}, {20, 2, 2, 10}}) {
    const auto q = randn(static_cast<std::size_t>(n * heads * hd), rng),
               k = randn(static_cast<std::size_t>(n * kv * hd), rng),
               v = randn(static_cast<std::size_t>(n * kv * hd), rng);
    std::vector<float> out(q.size());
    harness::poison(out);
    cpu::causal_attention(out.data(), q.data(), k.data(), v.data(), n, heads, kv, hd);
    std::vector<double> want(out.size(), 0.0);
    for (int h = 0; h < heads; ++h) {
      const int g = h / (heads / kv);
      for (int i = 0; i < n; ++i) {
        std::vector<double> s(static_cast<std::size_t>(i + 1));
        double mx = -1e300, sum = 0;
        for (int j = 0; j <= i; ++j) {
          double d = 0;
          for (int e = 0; e < hd; ++e)
            d += static_cast<double>(q[static_cast<std::size_t>((i * heads + h) * hd + e)]) *
                 k[static_cast<std::size_t>((j * kv + g) * hd + e)];
          s[static_cast<std::size_t>(j)] = d / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, s[static_cast<std::size_t>(j)]);
        }
        for (auto& x : s) sum += (x = std::exp(x - mx));
        for (int j = 0; j <= i; ++j)
          for (int e = 0; e < hd; ++e)
            want[static_cast<std::size_t>((i * heads + h) * hd + e)] +=
                s[static_cast<std::size_t>(j)] / sum * v[static_cast<std::size_t>((j * kv + g) * hd + e)];
      }
    }
    INFO("n=" << n << " heads=" << heads << " kv=" << kv << " hd=" << hd);
    expect_close(out, want, static_cast<std::size_t>(heads * hd), 1e-5);
  }
}

TEST_CASE("argmax takes the first of equal maxima", "[ops]") {
  const float x[] = {1, 5, 2, 5};
  CHECK(cpu::argmax(x, 4) == 1);
  // Against std::max_element at lengths around the vector width, with ties, -inf and NaN placed
  // in the vector part and in the tail.
  std::mt19937_64 rng(11);
  for (int n : {1, 15, 16, 17, 31, 32, 33, 100, 49152}) {
    for (int trial = 0; trial < 6; ++trial) {
      auto v = randn(static_cast<std::size_t>(n), rng);
      std::uniform_int_distribution<int> at(0, n - 1);
      if (trial == 1) v[static_cast<std::size_t>(at(rng))] = v[static_cast<std::size_t>(at(rng))] = 9.0f;  // a tie
      if (trial == 2) v[static_cast<std::size_t>(at(rng))] = -INFINITY;
      if (trial == 3) v[static_cast<std::size_t>(at(rng))] = INFINITY;
      if (trial == 4) v[static_cast<std::size_t>(at(rng))] = NAN;
      if (trial == 5) v[static_cast<std::size_t>(n - 1)] = NAN;
      INFO("n " << n << ", trial " << trial);
      CHECK(cpu::argmax(v.data(), n) == static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin()));
    }
  }
}
