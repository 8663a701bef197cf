// quant_harness: checks and times every version of quant_matmul.h (and every int8 path this
// CPU has) against the fp32 definition, like kernel_harness does for the CUDA kernels.
//
//   quant_harness check [--quick]   every version x type x shape: fresh seeded inputs, output
//                                   poisoned first, NaN fails, first mismatches printed
//   quant_harness bench [--repeat N] [--rows 1,4,16,64] [--all]
//                                   median (min-max) time per call on SmolLM2-135M's shapes, the
//                                   versions interleaved call by call, GB/s of W as read, and the
//                                   ratio to the fp32 kernel (cpu::matmul); --all adds 01 and the
//                                   scalar paths (the definitions, slow)
//
// Tolerances: 01 and 02 compute the same sums as the fp32 reference in another order (1e-5 of
// the row's largest value). 03 also rounds each activation to 1/254 of its block's largest:
// every output must lie within sum_b (dx_b / 2) sum_{j in b} |w_j| of the exact value (dx_b the
// block's activation scale), plus fp32 rounding; its paths must agree bit for bit (integer dots,
// the same float operations). 04 (03's scheme on repacked W) has the same bound, its paths bit for bit.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/quant_matmul/int8_activations.h"
#include "kernels/cpu/quant_matmul/quant_matmul.h"
#include "kernels/cpu/quantize.h"
#include "kernels/harness/compare.h"

namespace {

using llm::TensorType;
namespace qmm = llm::cpu::qmm;

struct Problem {
  TensorType type;
  int n, in, out;
  std::vector<float> x, w;      // w: the dequantized weights, the definition's input
  std::vector<std::uint8_t> q;  // W as stored
  qmm::QuantMatrix W() const { return {type, q.data(), in, out}; }
};

Problem make_problem(TensorType t, int n, int in, int out, std::mt19937& rng) {
  Problem p{t, n, in, out, {}, {}, {}};
  std::normal_distribution<float> normal;
  std::vector<float> raw(static_cast<std::size_t>(in) * out);
  for (auto& v : raw) v = normal(rng) * 0.05f;
  p.x.resize(static_cast<std::size_t>(n) * in);
  for (auto& v : p.x) v = normal(rng);
  const std::size_t rb = llm::cpu::row_bytes(t, static_cast<std::size_t>(in));
  p.q.resize(rb * out);
  p.w.resize(raw.size());
  for (int o = 0; o < out; ++o) {
    llm::cpu::quantize(t, raw.data() + static_cast<std::size_t>(o) * in, p.q.data() + o * rb,
                       static_cast<std::size_t>(in));
    llm::cpu::dequantize(t, p.q.data() + o * rb, p.w.data() + static_cast<std::size_t>(o) * in,
                         static_cast<std::size_t>(in));
  }
  return p;
}

// The definition, in double: y[i, o] = sum_k x[i, k] w[o, k].
std::vector<float> reference(const Problem& p) {
  std::vector<float> y(static_cast<std::size_t>(p.n) * p.out);
  for (int i = 0; i < p.n; ++i)
    for (int o = 0; o < p.out; ++o) {
      double s = 0;
      for (int k = 0; k < p.in; ++k)
        s += static_cast<double>(p.x[static_cast<std::size_t>(i) * p.in + k]) *
             p.w[static_cast<std::size_t>(o) * p.in + k];
      y[static_cast<std::size_t>(i) * p.out + o] = static_cast<float>(s);
    }
  return y;
}

// Version 03's bound per output (see the header comment).
std::vector<double> int8_bound(const Problem& p) {
  std::vector<double> b(static_cast<std::size_t>(p.n) * p.out);
  for (int i = 0; i < p.n; ++i)
    for (int o = 0; o < p.out; ++o) {
      double s = 0;
      for (int blk = 0; blk < p.in / 32; ++blk) {
        double amax = 0, wsum = 0, prod = 0;
        for (int j = 0; j < 32; ++j) {
          const double xv = p.x[static_cast<std::size_t>(i) * p.in + blk * 32 + j];
          const double wv = p.w[static_cast<std::size_t>(o) * p.in + blk * 32 + j];
          amax = std::max(amax, std::fabs(xv));
          wsum += std::fabs(wv);
          prod += std::fabs(xv * wv);
        }
        s += amax / 127.0 / 2.0 * wsum + 1e-5 * prod;
      }
      b[static_cast<std::size_t>(i) * p.out + o] = s + 1e-6;
    }
  return b;
}

// The activation quantizer's AVX-512 twin against its definition, on random blocks and on blocks
// built to hit the rounding ties (x / d = k + 0.5) and zeros: the same bytes, scale and sum.
int check_activation_quantizer(std::mt19937& rng) {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") || !__builtin_cpu_supports("avx512dq"))
    return 0;
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int> k(-127, 126);
  int bad = 0;
  for (int blk = 0; blk < 4000; ++blk) {
    float x[32];
    for (int j = 0; j < 32; ++j) x[j] = normal(rng) * (blk % 7 == 0 ? 1e-30f : 1.0f);
    if (blk % 3 == 1) {  // ties: max|x| = 127 exactly, so d = 1 and x = k + 0.5 sits on a tie
      for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(k(rng)) + 0.5f;
      x[0] = blk % 2 ? 127.0f : -127.0f;
    }
    if (blk % 11 == 0) std::fill(x, x + 32, 0.0f);
    std::int8_t q0[32], q1[32];
    std::int32_t s0 = 0, s1 = 0;
    const float d0 = qmm::detail::quantize_block(x, q0, &s0), d1 = qmm::detail::quantize_block_avx512(x, q1, &s1);
    if (std::memcmp(q0, q1, 32) != 0 || std::memcmp(&d0, &d1, 4) != 0 || s0 != s1) {
      if (++bad <= 10) std::printf("  activation block %d: avx512 quantizer differs from the scalar one\n", blk);
    }
  }
  if (bad > 0) std::printf("FAIL activation quantizer avx512: %d of 4000 blocks differ\n", bad);
  return bad > 0 ? 1 : 0;
#else
  (void)rng;
  return 0;
#endif
}

int check(bool quick) {
  std::mt19937 rng(2024);
  int failures = check_activation_quantizer(rng), checks = 1;
  std::vector<std::tuple<int, int, int>> shapes = {{1, 32, 7},   {1, 576, 192}, {3, 96, 65},  {4, 576, 100},
                                                   {16, 64, 33}, {17, 160, 19}, {40, 256, 24}};
  if (!quick) shapes.push_back({16, 1536, 576});
  const auto paths = qmm::available_int8_paths();
  for (auto t : {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_1}) {
    for (const auto& shape : shapes) {
      // Plain ints, not structured bindings: the lambdas below capture them (clang 14 cannot).
      const int n = std::get<0>(shape), in = std::get<1>(shape), out = std::get<2>(shape);
      const Problem p = make_problem(t, n, in, out, rng);
      const auto want = reference(p);
      const auto cols = static_cast<std::size_t>(out);
      auto run = [&](const char* name, auto&& kernel, double tol) {
        std::vector<float> y(want.size());
        llm::harness::poison(y);
        kernel(y);
        const auto cmp = llm::harness::compare_rows(y, want, cols, tol);
        ++checks;
        if (!cmp.ok) {
          ++failures;
          std::printf("FAIL %s %s n=%d in=%d out=%d: max rel %.3g\n%s\n", name, llm::tensor_type_name(t).c_str(), n, in,
                      out, cmp.max_rel, cmp.report.c_str());
        }
        return y;
      };
      run(
          "01_dequantize_row",
          [&](std::vector<float>& y) { qmm::matmul_01_dequantize_row(y.data(), p.x.data(), p.W(), n); }, 1e-5);
      run(
          "02_fused", [&](std::vector<float>& y) { qmm::matmul_02_fused(y.data(), p.x.data(), p.W(), n); }, 1e-5);
      const auto bound = int8_bound(p);
      const qmm::PackedMatrix packed = qmm::pack_rows_16(p.W());
      for (const char* version : {"03_int8", "04_int8_packed"}) {
        std::vector<float> scalar;  // the version's scalar path: the others must equal it bit for bit
        for (auto path : paths) {
          std::vector<float> y(want.size());
          llm::harness::poison(y);
          if (std::string(version) == "03_int8")
            qmm::matmul_03_int8(y.data(), p.x.data(), p.W(), n, path);
          else
            qmm::matmul_04_int8_packed(y.data(), p.x.data(), packed, n, path);
          ++checks;
          int bad = 0;
          for (std::size_t i = 0; i < y.size(); ++i) {
            const bool ok = std::isfinite(y[i]) && std::fabs(static_cast<double>(y[i]) - want[i]) <= bound[i] &&
                            (scalar.empty() || std::memcmp(&y[i], &scalar[i], 4) == 0);
            if (!ok && ++bad <= 10)
              std::printf("  %s/%s %s n=%d in=%d out=%d [%zu, %zu]: got %.8g want %.8g (bound %.3g)%s\n", version,
                          qmm::int8_path_name(path), llm::tensor_type_name(t).c_str(), n, in, out, i / cols, i % cols,
                          y[i], want[i], bound[i],
                          scalar.empty() ? "" : (" scalar " + std::to_string(scalar[i])).c_str());
          }
          if (bad > 0) {
            ++failures;
            std::printf("FAIL %s/%s: %d outputs wrong\n", version, qmm::int8_path_name(path), bad);
          }
          if (scalar.empty()) scalar = y;
        }
      }
    }
  }
  std::printf("quant_harness check: %d of %d checks passed (int8 paths:", checks - failures, checks);
  for (auto p : paths) std::printf(" %s", qmm::int8_path_name(p));
  std::printf(")\n");
  return failures == 0 ? 0 : 1;
}

double seconds(const std::function<void()>& f) {
  const auto a = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int bench(int repeat, const std::vector<int>& rows, bool all_paths) {
  std::mt19937 rng(7);
  // SmolLM2-135M's matrices, [out, in] as stage 04 packs them: wqkv [960, 576] (k and v alone
  // [192, 576]), wo [576, 576], w13 [3072, 576] (w1 alone [1536, 576]), w2 [576, 1536], the tied
  // classifier [49152, 576].
  const std::vector<std::pair<int, int>> shapes = {{576, 576},  {576, 192},  {576, 960},  {576, 1536},
                                                   {576, 3072}, {1536, 576}, {576, 49152}};
  std::printf("%-26s %-5s %4s %6s %6s %10s %21s %9s %8s %15s\n", "version", "type", "n", "out", "in", "us/call",
              "(min-max)", "W GB/s", "vs fp32", "(min-max)");
  for (auto t : {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_1}) {
    for (const auto& shape : shapes) {
      const int in = shape.first, out = shape.second;
      for (int n : rows) {
        const Problem p = make_problem(t, n, in, out, rng);
        const qmm::PackedMatrix packed = qmm::pack_rows_16(p.W());
        std::vector<float> y(static_cast<std::size_t>(n) * out);
        struct Variant {
          std::string name;
          std::function<void()> run;
          double bytes;
          std::vector<double> s;
        };
        std::vector<Variant> vs;
        vs.push_back({"fp32 (cpu::matmul)",
                      [&] { llm::cpu::matmul(y.data(), p.x.data(), p.w.data(), n, in, out); },
                      4.0 * in * out,
                      {}});
        const auto q = static_cast<double>(p.q.size());
        if (all_paths)
          vs.push_back(
              {"01_dequantize_row", [&] { qmm::matmul_01_dequantize_row(y.data(), p.x.data(), p.W(), n); }, q, {}});
        vs.push_back({"02_fused", [&] { qmm::matmul_02_fused(y.data(), p.x.data(), p.W(), n); }, q, {}});
        for (auto path : qmm::available_int8_paths()) {
          if (path == qmm::Int8Path::Scalar && !all_paths) continue;
          vs.push_back({std::string("03_int8/") + qmm::int8_path_name(path),
                        [&, path] { qmm::matmul_03_int8(y.data(), p.x.data(), p.W(), n, path); },
                        q,
                        {}});
        }
        for (auto path : qmm::available_int8_paths()) {
          if (path == qmm::Int8Path::Scalar && !all_paths) continue;
          vs.push_back({std::string("04_int8_packed/") + qmm::int8_path_name(path),
                        [&, path] { qmm::matmul_04_int8_packed(y.data(), p.x.data(), packed, n, path); },
                        static_cast<double>(packed.bytes()),
                        {}});
        }
        for (auto& v : vs) v.run();  // warm-up
        // Side by side: every repeat runs each variant once, in turn, so a busy moment of the
        // machine falls on all of them; the ratio to fp32 is taken within each repeat.
        for (int r = 0; r < repeat; ++r)
          for (auto& v : vs) v.s.push_back(seconds(v.run));
        for (const auto& v : vs) {
          std::vector<double> ratio;
          for (int r = 0; r < repeat; ++r)
            ratio.push_back(vs[0].s[static_cast<std::size_t>(r)] / v.s[static_cast<std::size_t>(r)]);
          const double med = median(v.s);
          std::printf("%-26s %-5s %4d %6d %6d %10.1f (%8.1f-%9.1f) %9.1f %7.2fx (%5.2f-%6.2fx)\n", v.name.c_str(),
                      &v == &vs[0] ? "F32" : llm::tensor_type_name(t).c_str(), n, out, in, med * 1e6,
                      *std::min_element(v.s.begin(), v.s.end()) * 1e6, *std::max_element(v.s.begin(), v.s.end()) * 1e6,
                      v.bytes / med / 1e9, median(ratio), *std::min_element(ratio.begin(), ratio.end()),
                      *std::max_element(ratio.begin(), ratio.end()));
        }
      }
    }
  }
  std::printf(
      "(%d threads; medians of %d interleaved calls; W cache-resident after the first call; W GB/s counts "
      "W's bytes as each version reads them, once per call)\n",
      llm::cpu::thread_count(), repeat);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  try {
    if (cmd == "check") return check(argc > 2 && std::string(argv[2]) == "--quick");
    if (cmd == "bench") {
      int repeat = 20;
      bool all_paths = false;
      std::vector<int> rows = {1, 4, 16, 64};
      for (int a = 2; a < argc; a += 2) {
        const std::string flag = argv[a];
        if (flag == "--all") {
          all_paths = true;
          --a;
          continue;
        }
        if (a + 1 >= argc) {
          std::fprintf(stderr, "error: quant_harness bench: %s needs a value\n", flag.c_str());
          return 2;
        }
        const std::string v = argv[a + 1];
        if (flag == "--repeat") {
          repeat = std::stoi(v);
        } else if (flag == "--rows") {
          rows.clear();
          for (std::size_t pos = 0; pos < v.size();) {
            const auto comma = v.find(',', pos);
            rows.push_back(std::stoi(v.substr(pos, comma - pos)));
            pos = comma == std::string::npos ? v.size() : comma + 1;
          }
        } else {
          std::fprintf(stderr, "error: quant_harness bench: unknown flag %s\n", flag.c_str());
          return 2;
        }
      }
      if (repeat < 1 || rows.empty() || *std::min_element(rows.begin(), rows.end()) < 1) {
        std::fprintf(stderr, "error: quant_harness bench: --repeat and --rows must be positive\n");
        return 2;
      }
      return bench(repeat, rows, all_paths);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: quant_harness %s: %s\n", cmd.c_str(), e.what());
    return 2;
  }
  std::fprintf(stderr, "usage: quant_harness check [--quick] | bench [--repeat N] [--rows 1,4,16] [--all]\n");
  return 2;
}
