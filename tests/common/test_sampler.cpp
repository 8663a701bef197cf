// Sampler: greedy is argmax, a seed fixes the sequence, top-k / top-p cut the distribution the
// way their definitions say, and draws follow the distribution.
#include <catch2/catch.hpp>
#include <cmath>

#include "common/sampler.h"

using namespace llm;

namespace {
const std::vector<float> kLogits = {1.0f, 3.0f, 2.0f, 0.5f, 2.9f, -1.0f};
}

TEST_CASE("greedy picks the argmax", "[sampler]") {
  Sampler s({0.0f, 0, 1.0f, 1});
  CHECK(s.sample(kLogits.data(), 6) == 1);
  Sampler k1({1.0f, 1, 1.0f, 1});  // top-k 1 is greedy at any temperature
  for (int i = 0; i < 20; ++i) CHECK(k1.sample(kLogits.data(), 6) == 1);
}

TEST_CASE("the same seed gives the same tokens; another seed does not", "[sampler]") {
  auto draw = [](std::uint64_t seed) {
    Sampler s({1.0f, 0, 1.0f, seed});
    std::vector<int> out;
    for (int i = 0; i < 50; ++i) out.push_back(s.sample(kLogits.data(), 6));
    return out;
  };
  CHECK(draw(7) == draw(7));
  CHECK(draw(7) != draw(8));
}

TEST_CASE("top-k and top-p keep the right tokens", "[sampler]") {
  const auto k2 = Sampler({1.0f, 2, 1.0f, 1}).distribution(kLogits.data(), 6);
  CHECK(k2[1] > 0.0f);
  CHECK(k2[4] > 0.0f);
  CHECK(k2[0] + k2[2] + k2[3] + k2[5] == 0.0f);
  CHECK(k2[1] / k2[4] == Approx(std::exp(0.1)).epsilon(1e-5));

  // Softmax of kLogits: token 1 ~0.37, token 4 ~0.33, token 2 ~0.14 ... top-p 0.6 keeps 1 and 4.
  const auto p6 = Sampler({1.0f, 0, 0.6f, 1}).distribution(kLogits.data(), 6);
  CHECK(p6[1] > 0.0f);
  CHECK(p6[4] > 0.0f);
  CHECK(p6[2] == 0.0f);
  CHECK(p6[1] + p6[4] == Approx(1.0f));

  // Temperature sharpens: at 0.5 the ratio of the top two is exp(0.1 / 0.5).
  const auto t = Sampler({0.5f, 0, 1.0f, 1}).distribution(kLogits.data(), 6);
  CHECK(t[1] / t[4] == Approx(std::exp(0.2)).epsilon(1e-5));
}

TEST_CASE("draws follow the distribution (chi-square)", "[sampler]") {
  Sampler s({1.0f, 0, 1.0f, 123});
  const auto p = s.distribution(kLogits.data(), 6);
  const int n = 20000;
  std::vector<int> count(6, 0);
  for (int i = 0; i < n; ++i) ++count[static_cast<std::size_t>(s.sample(kLogits.data(), 6))];
  double chi2 = 0.0;
  for (std::size_t i = 0; i < 6; ++i) {
    const double e = n * static_cast<double>(p[i]);
    chi2 += (count[i] - e) * (count[i] - e) / e;
  }
  // 5 degrees of freedom: P(chi2 > 20.5) = 0.001. A wrong sampler lands far above.
  CHECK(chi2 < 20.5);
}
