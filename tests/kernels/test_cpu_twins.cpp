// The CPU twins of the CUDA kernels (kernels/cpu/half.h, kernels/cpu/attention.h) and the
// harness's comparison, checked on the CPU: this is what CI runs of the GPU half of the course.
//   fp16/bf16 conversion     against the CPU's F16C (or _Float16) and a nearest-value search
//   attention_reference      against cpu::causal_attention (stage 01's kernel) and itself
//   attention_online_softmax against attention_reference, every tile size and awkward shape
//   paged_decode_attention   against attention_reference over shuffled blocks, any split count
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "kernels/cpu/attention.h"
#include "kernels/cpu/half.h"
#include "kernels/cpu/ops.h"
#include "tests/helpers/checks.h"

using namespace llm;

namespace {

// The independent fp16 conversion the test compares with: the CPU's own F16C instructions where
// the build targets them (-march=native on any recent x86), else the compiler's _Float16.
#if defined(__F16C__)
#define HAVE_REFERENCE_HALF 1
std::uint16_t reference_to_half(float f) {
  return static_cast<std::uint16_t>(_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), _MM_FROUND_TO_NEAREST_INT), 0));
}
float reference_from_half(std::uint16_t h) { return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h))); }
#elif defined(__FLT16_MAX__)
#define HAVE_REFERENCE_HALF 1
std::uint16_t reference_to_half(float f) {
  const auto h = static_cast<_Float16>(f);
  std::uint16_t b;
  std::memcpy(&b, &h, 2);
  return b;
}
float reference_from_half(std::uint16_t b) {
  _Float16 h;
  std::memcpy(&h, &b, 2);
  return static_cast<float>(h);
}
#endif

struct Inputs {
  std::vector<float> q, k, v;
};

Inputs random_inputs(const cpu::AttentionShape& s, std::uint64_t seed) {
  return {test::randn(s.q_elems(), seed), test::randn(s.kv_elems(), seed + 1), test::randn(s.kv_elems(), seed + 2)};
}

}  // namespace

TEST_CASE("fp16 conversion rounds like the CPU's F16C instructions", "[twins]") {
#ifndef HAVE_REFERENCE_HALF
  WARN("no independent fp16 conversion in this build (neither F16C nor _Float16): nothing to compare");
  return;
#else
  // Every fp16 value back to float.
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const auto b = static_cast<std::uint16_t>(h);
    const float want = reference_from_half(b), got = cpu::half_to_float(b);
    if (std::isnan(want)) {
      REQUIRE(std::isnan(got));
    } else {
      REQUIRE(std::memcmp(&want, &got, 4) == 0);
    }
  }
  // Floats to fp16: random bit patterns over the whole range, plus the edges.
  std::mt19937 rng(7);
  std::vector<float> xs = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, 1e-8f, 2.98e-8f, 2.9802322e-8f, 5.96e-8f,
                           6.1e-5f, 6.1035156e-5f, 1.0f + 1.0f / 2048.0f, 1.0f + 3.0f / 2048.0f,
                           std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
  for (int i = 0; i < 200000; ++i) {
    const std::uint32_t u = rng();
    float f;
    std::memcpy(&f, &u, 4);
    xs.push_back(f);
    xs.push_back(std::ldexp(static_cast<float>(rng() % 100000) / 1000.0f, static_cast<int>(rng() % 50) - 30));
  }
  for (const float f : xs) {
    if (std::isnan(f)) {
      REQUIRE(std::isnan(cpu::half_to_float(cpu::float_to_half(f))));
      continue;
    }
    INFO("f = " << f);
    REQUIRE(cpu::float_to_half(f) == reference_to_half(f));
  }
#endif
}

TEST_CASE("round_to_half over a buffer gives float_to_half's values, in place or not, any length", "[twins]") {
  // The bulk rounding CpuOps stores its activations with (F16C 8 at a time on x86, else scalar)
  // against the scalar definition, itself checked against the CPU above.
  std::mt19937 rng(11);
  std::vector<float> xs = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, -65520.0f, 1e-8f, 2.9802322e-8f, 5.96e-8f,
                           6.1035156e-5f, 1.0f + 1.0f / 2048.0f, 1.0f + 3.0f / 2048.0f,
                           std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()};
  for (int i = 0; i < 50000; ++i) {
    const std::uint32_t u = rng();
    float f;
    std::memcpy(&f, &u, 4);
    xs.push_back(f);
    xs.push_back(std::ldexp(static_cast<float>(rng() % 100000) / 1000.0f, static_cast<int>(rng() % 50) - 30));
  }
  for (const std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{8}, std::size_t{13},
                              xs.size()}) {
    std::vector<float> out(n + 1, 123.0f), inplace(xs.begin(), xs.begin() + static_cast<std::ptrdiff_t>(n));
    cpu::round_to_half(xs.data(), n, out.data());
    cpu::round_to_half(inplace.data(), n, inplace.data());
    REQUIRE(out[n] == 123.0f);  // nothing written past n
    for (std::size_t i = 0; i < n; ++i) {
      const float want = cpu::half_to_float(cpu::float_to_half(xs[i]));
      INFO("n = " << n << ", x[" << i << "] = " << xs[i]);
      if (std::isnan(want)) {
        REQUIRE(std::isnan(out[i]));
        REQUIRE(std::isnan(inplace[i]));
      } else {
        REQUIRE(std::memcmp(&want, &out[i], 4) == 0);
        REQUIRE(std::memcmp(&want, &inplace[i], 4) == 0);
      }
    }
  }
}

TEST_CASE("bf16 conversion picks the nearest bf16, ties to even", "[twins]") {
  std::mt19937 rng(11);
  for (int i = 0; i < 200000; ++i) {
    const std::uint32_t u = rng() % 0x7F7F0000u;  // finite and positive; rounding up cannot reach inf
    float f;
    std::memcpy(&f, &u, 4);
    const std::uint16_t got = cpu::float_to_bf16(f);
    const std::uint16_t lo = static_cast<std::uint16_t>(u >> 16), hi = static_cast<std::uint16_t>(lo + 1);
    const double dl = std::fabs(static_cast<double>(f) - cpu::bf16_to_float(lo));
    const double dh = std::fabs(static_cast<double>(f) - cpu::bf16_to_float(hi));
    const std::uint16_t want = dl < dh ? lo : dh < dl ? hi : ((lo & 1u) ? hi : lo);
    INFO("bits " << u);
    REQUIRE(got == want);
  }
  REQUIRE(std::isnan(cpu::bf16_to_float(cpu::float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST_CASE("attention_reference is causal_attention, continues a prefix, and sees all keys without causal",
          "[twins]") {
  // Causal, q_len = kv_len: the CPU stages' kernel (written independently in ops.cpp).
  for (auto [n, h, kvh, d] : {std::tuple{1, 1, 1, 8}, {37, 9, 3, 64}, {20, 4, 4, 128}}) {
    cpu::AttentionShape s{1, n, n, h, kvh, d, true};
    const Inputs in = random_inputs(s, static_cast<std::uint64_t>(n * 100 + d));
    std::vector<float> got(s.q_elems()), want(s.q_elems());
    harness::poison(got);
    cpu::attention_reference(got.data(), in.q.data(), in.k.data(), in.v.data(), s);
    cpu::causal_attention(want.data(), in.q.data(), in.k.data(), in.v.data(), n, h, kvh, d);
    test::check_rows(got, want, static_cast<std::size_t>(d), 1e-5);
  }
  // A prefill continuing a cached prefix gives the last rows of the full prefill.
  cpu::AttentionShape full{1, 50, 50, 6, 2, 64, true};
  const Inputs in = random_inputs(full, 5);
  std::vector<float> all(full.q_elems());
  cpu::attention_reference(all.data(), in.q.data(), in.k.data(), in.v.data(), full);
  cpu::AttentionShape tail = full;
  tail.q_len = 13;
  const std::size_t row = static_cast<std::size_t>(full.n_heads) * full.head_dim;
  std::vector<float> got(tail.q_elems());
  harness::poison(got);
  cpu::attention_reference(got.data(), in.q.data() + 37 * row, in.k.data(), in.v.data(), tail);
  test::check_rows(got, std::vector<float>(all.begin() + 37 * static_cast<long>(row), all.end()), 64, 1e-6);
  // Without the mask, each query sees every key: the causal answer for that query placed last.
  cpu::AttentionShape open = full;
  open.causal = false;
  std::vector<float> nc(open.q_elems());
  cpu::attention_reference(nc.data(), in.q.data(), in.k.data(), in.v.data(), open);
  cpu::AttentionShape last = full;
  last.q_len = 1;
  for (int i = 0; i < full.q_len; i += 7) {
    std::vector<float> one(row);
    cpu::attention_reference(one.data(), in.q.data() + static_cast<std::size_t>(i) * row, in.k.data(), in.v.data(), last);
    test::check_rows(std::vector<float>(nc.begin() + static_cast<long>(i * row), nc.begin() + static_cast<long>((i + 1) * row)),
                     one, 64, 1e-6);
  }
}

TEST_CASE("attention_online_softmax equals the definition for every tile size and shape", "[twins]") {
  const cpu::AttentionShape shapes[] = {
      {1, 1, 1, 1, 1, 64, true},     {2, 100, 100, 8, 2, 64, true},  {2, 100, 100, 8, 2, 64, false},
      {3, 13, 77, 9, 3, 64, true},   {1, 129, 129, 4, 1, 128, true}, {1, 5, 300, 2, 2, 128, false},
      {1, 64, 64, 32, 8, 128, true},
  };
  for (const auto& s : shapes)
    for (const int tile : {1, 7, 16, 64, 1000}) {
      const Inputs in = random_inputs(s, static_cast<std::uint64_t>(s.kv_len * 10 + tile));
      std::vector<float> got(s.q_elems()), want(s.q_elems());
      harness::poison(got);
      cpu::attention_online_softmax(got.data(), in.q.data(), in.k.data(), in.v.data(), s, tile);
      cpu::attention_reference(want.data(), in.q.data(), in.k.data(), in.v.data(), s);
      INFO("batch " << s.batch << " q_len " << s.q_len << " kv_len " << s.kv_len << " heads " << s.n_heads << "/"
                    << s.n_kv_heads << " head_dim " << s.head_dim << " causal " << s.causal << " tile " << tile);
      test::check_rows(got, want, static_cast<std::size_t>(s.head_dim), 1e-5);
    }
}

TEST_CASE("paged_decode_attention over shuffled blocks equals the definition for any split count", "[twins]") {
  struct Case {
    std::vector<int> lens;
    int n_heads, n_kv_heads, head_dim, block_size;
  };
  const Case cases[] = {{{1}, 4, 4, 64, 16},
                        {{17, 300, 1, 64}, 32, 8, 128, 16},
                        {{45, 9}, 9, 3, 64, 1},
                        {{1000, 33}, 8, 2, 64, 32}};
  std::mt19937 rng(3);
  for (const Case& c : cases) {
    const int batch = static_cast<int>(c.lens.size());
    const int max_len = *std::max_element(c.lens.begin(), c.lens.end());
    const int max_blocks = (max_len + c.block_size - 1) / c.block_size;
    const int num_blocks = batch * max_blocks + 3;  // some blocks belong to nobody
    const std::size_t token = static_cast<std::size_t>(c.n_kv_heads) * c.head_dim;
    const std::vector<float> kpool = test::randn(static_cast<std::size_t>(num_blocks) * c.block_size * token, 21);
    const std::vector<float> vpool = test::randn(kpool.size(), 22);
    const std::vector<float> q = test::randn(static_cast<std::size_t>(batch) * c.n_heads * c.head_dim, 23);
    std::vector<int> order(static_cast<std::size_t>(num_blocks));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<int> table(static_cast<std::size_t>(batch) * max_blocks, -1);
    for (std::size_t i = 0; i < table.size(); ++i) table[i] = order[i];
    cpu::PagedKvView kv{kpool.data(), vpool.data(), num_blocks, c.block_size, c.n_kv_heads, c.head_dim,
                        table.data(), max_blocks, c.lens.data()};
    // The definition, per sequence, over its keys gathered into contiguous rows.
    std::vector<float> want(q.size());
    for (int b = 0; b < batch; ++b) {
      const int len = c.lens[static_cast<std::size_t>(b)];
      std::vector<float> k(static_cast<std::size_t>(len) * token), v(k.size());
      for (int p = 0; p < len; ++p) {
        const std::size_t src =
            (static_cast<std::size_t>(table[static_cast<std::size_t>(b * max_blocks + p / c.block_size)]) * c.block_size +
             static_cast<std::size_t>(p % c.block_size)) * token;
        std::copy_n(kpool.begin() + static_cast<long>(src), token, k.begin() + static_cast<long>(p * token));
        std::copy_n(vpool.begin() + static_cast<long>(src), token, v.begin() + static_cast<long>(p * token));
      }
      cpu::AttentionShape s{1, 1, len, c.n_heads, c.n_kv_heads, c.head_dim, true};
      const std::size_t off = static_cast<std::size_t>(b) * c.n_heads * c.head_dim;
      cpu::attention_reference(want.data() + off, q.data() + off, k.data(), v.data(), s);
    }
    for (const int splits : {1, 2, 3, 17, 2000}) {
      std::vector<float> got(q.size());
      harness::poison(got);
      cpu::paged_decode_attention(got.data(), q.data(), batch, c.n_heads, kv, splits);
      INFO("block size " << c.block_size << ", " << splits << " splits");
      test::check_rows(got, want, static_cast<std::size_t>(c.head_dim), 1e-5);
    }
  }
}

TEST_CASE("attention twins refuse impossible shapes and count FLOPs", "[twins]") {
  std::vector<float> buf(1 << 12);
  cpu::AttentionShape s{1, 4, 3, 2, 2, 8, true};  // q_len > kv_len
  CHECK_THROWS_WITH(cpu::attention_reference(buf.data(), buf.data(), buf.data(), buf.data(), s),
                    Catch::Contains("kv_len = 3"));
  s = {1, 2, 2, 3, 2, 8, true};  // 3 heads over 2 kv heads
  CHECK_THROWS_WITH(cpu::attention_online_softmax(buf.data(), buf.data(), buf.data(), buf.data(), s, 4),
                    Catch::Contains("n_heads = 3"));
  // Causal FLOPs count exactly the visible (query, key) pairs.
  const cpu::AttentionShape c{2, 5, 9, 4, 2, 64, true};
  double pairs = 0;
  for (int i = 0; i < c.q_len; ++i) pairs += c.kv_len - c.q_len + i + 1;
  CHECK(c.flops() == Approx(4.0 * c.batch * c.n_heads * c.head_dim * pairs));
  cpu::AttentionShape nc = c;
  nc.causal = false;
  CHECK(nc.flops() == Approx(4.0 * nc.batch * nc.n_heads * nc.head_dim * nc.q_len * nc.kv_len));
}

TEST_CASE("the harness comparison fails on NaN and on large errors, and stops listing after ten", "[twins]") {
  std::vector<float> want(40, 1.0f), got = want;
  CHECK(harness::compare_rows(got, want, 8, 1e-6).ok);
  got[3] = std::numeric_limits<float>::quiet_NaN();
  CHECK_FALSE(harness::compare_rows(got, want, 8, 1.0).ok);  // NaN fails at any tolerance
  got = want;
  got[9] = 1.01f;
  CHECK(harness::compare_rows(got, want, 8, 0.02).ok);
  CHECK_FALSE(harness::compare_rows(got, want, 8, 0.005).ok);
  std::fill(got.begin(), got.end(), 2.0f);
  const auto c = harness::compare_rows(got, want, 8, 1e-3);
  CHECK_FALSE(c.ok);
  CHECK(std::count(c.report.begin(), c.report.end(), '\n') == 11);  // ten mismatches + "stopping"
  CHECK(c.report.find("stopping after ten") != std::string::npos);
  // A broken twin: NaN in `want` fails; an inf in `want` does not widen the row's tolerance (it
  // passes only where `got` is the same infinity).
  got = want;
  want[2] = std::numeric_limits<float>::quiet_NaN();
  CHECK_FALSE(harness::compare_rows(got, want, 8, 1.0).ok);
  want[2] = std::numeric_limits<float>::infinity();
  got[5] = 1.5f;
  CHECK_FALSE(harness::compare_rows(got, want, 8, 0.02).ok);
  got[5] = 1.0f;
  CHECK_FALSE(harness::compare_rows(got, want, 8, 0.02).ok);  // got 1 where want is inf
  got[2] = want[2];
  CHECK(harness::compare_rows(got, want, 8, 1e-6).ok);
  got[2] = -want[2];
  CHECK_FALSE(harness::compare_rows(got, want, 8, 1.0).ok);
}
