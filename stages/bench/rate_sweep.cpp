#include "rate_sweep.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/error.h"

namespace llm::bench {

int requests_at_rate(double rate, int least, double seconds) {
  const double by_time = std::ceil(seconds * rate - 1e-9);  // 3 s x 16 req/s is 48, not 49
  return std::max(least, static_cast<int>(std::min(by_time, 1e7)));
}

RateGrid parse_rate_grid(const std::string& flag, const std::string& text) {
  RateGrid g;
  char tail = 0;
  const bool parsed = std::sscanf(text.c_str(), "%lf,%lf,%lf%c", &g.lo, &g.hi, &g.step, &tail) == 3;
  const auto bad = [&](const std::string& why) { return Error(flag + " '" + text + "': " + why); };
  if (!parsed) throw bad("expected LO,HI,STEP (fractions of the capacity and the relative step, e.g. 0.5,1.6,0.12)");
  if (!(g.lo > 0.0 && g.lo <= g.hi && g.hi <= 100.0)) throw bad("expected 0 < LO <= HI <= 100");
  if (!(g.step >= 0.01 && g.step <= 10.0)) throw bad("expected 0.01 <= STEP <= 10");
  if (std::log(g.hi / g.lo) / std::log1p(g.step) > 199.0) throw bad("more than 200 rates");
  return g;
}

namespace {

double two_significant_digits(double x) {
  const double scale = std::pow(10.0, std::floor(std::log10(x)) - 1.0);
  return std::round(x / scale) * scale;
}

}  // namespace

std::vector<double> grid_rates(const RateGrid& g, double capacity_rps) {
  if (!(capacity_rps > 0.0) || !std::isfinite(capacity_rps))
    throw Error("rate grid: capacity " + std::to_string(capacity_rps) + " req/s is not a positive number");
  std::vector<double> rates;
  for (double f = g.lo;; f *= 1.0 + g.step) {
    rates.push_back(two_significant_digits(f * capacity_rps));
    if (f >= g.hi * (1.0 - 1e-12)) break;
  }
  return merge_rates(rates, {});
}

std::vector<double> merge_rates(std::vector<double> rates, const std::vector<double>& more) {
  rates.insert(rates.end(), more.begin(), more.end());
  std::sort(rates.begin(), rates.end());
  rates.erase(std::unique(rates.begin(), rates.end()), rates.end());
  return rates;
}

std::vector<WorkloadItem> cycled_workload(const std::vector<WorkloadItem>& items, std::size_t n) {
  if (items.empty()) throw Error("cycled workload: the workload holds no request");
  std::vector<WorkloadItem> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t pass = i / items.size();
    WorkloadItem item = items[i % items.size()];
    if (pass > 0) {
      // Drop min(pass, spaces) words: everything up to and including the pass-th space.
      std::size_t at = 0;
      for (std::size_t dropped = 0; dropped < pass; ++dropped) {
        const std::size_t space = item.prompt.find(' ', at);
        if (space == std::string::npos) break;
        at = space + 1;
      }
      item.prompt.erase(0, at);
      item.id += "-pass" + std::to_string(pass);
    }
    out.push_back(std::move(item));
  }
  return out;
}

}  // namespace llm::bench
