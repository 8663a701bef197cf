#include "adaptive_k.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace llm::stage06 {

namespace {
constexpr long kProbeEvery = 8;     ///< a step next to the best k every 8 steps while speculating, every 64 when off
constexpr double kSmoothing = 0.2;  ///< weight of one step in the moving averages
constexpr int kClimbSteps = 2;      ///< steps each k of the climb is measured before the next
constexpr double kFarSlower = 0.8;  ///< ... unless its first step was this much slower than the last k
/// Speculation must measure this much faster than k = 0 to be chosen: off is the safe choice (it
/// costs nothing when the measurements are noisy), and a k that only ties with it loses a little
/// to the rows it wastes whenever acceptance dips.
constexpr double kMarginOverOff = 1.03;
}  // namespace

AdaptiveK::AdaptiveK(int k_max, int cheap_rows) : k_max_(std::max(0, k_max)), cheap_rows_(std::max(0, cheap_rows)) {}

int AdaptiveK::bucket(int batch) { return std::bit_width(static_cast<unsigned>(std::max(batch, 1))); }

std::vector<AdaptiveK::Measured>& AdaptiveK::at(int batch) {
  auto& m = seen_[bucket(batch)];
  m.resize(static_cast<std::size_t>(k_max_) + 1);
  return m;
}

double AdaptiveK::rate(int batch, int k) const {
  const auto it = seen_.find(bucket(batch));
  if (it == seen_.end() || k < 0 || k > k_max_) return 0.0;
  const Measured& m = it->second[static_cast<std::size_t>(k)];
  return m.steps > 0 && m.seconds > 0.0 ? m.tokens / m.seconds : 0.0;
}

namespace {
/// Expected tokens a sequence emits in a verify step of k proposals, each accepted with
/// probability a given the ones before: 1 + a + ... + a^k.
double expected_tokens(double a, int k) {
  return a >= 1.0 ? k + 1.0 : (1.0 - std::pow(a, k + 1)) / (1.0 - a);
}
}  // namespace

double AdaptiveK::predicted_rate(int batch, int k) const {
  const auto it = seen_.find(bucket(batch));
  if (it == seen_.end() || k < 1 || k > k_max_) return 0.0;
  const std::vector<Measured>& seen = it->second;
  const Measured& off = seen[0];
  int from = 0;  // the largest measured k within the cheap rows
  for (int j = 1; j <= k_max_; ++j)
    if (seen[static_cast<std::size_t>(j)].steps > 0 && (cheap_rows_ == 0 || batch * (j + 1) <= cheap_rows_)) from = j;
  if (off.steps == 0 || from == 0 || !(off.tokens > 0.0) || !(off.seconds > 0.0)) return 0.0;
  const Measured& m = seen[static_cast<std::size_t>(from)];
  // Tokens per sequence and step at `from` (k = 0 emits one per sequence), and the acceptance
  // that yields them (expected_tokens rises with a: bisection).
  const double yield = std::clamp(m.tokens / off.tokens, 1.0, from + 1.0);
  double lo = 0.0, hi = 1.0;
  for (int i = 0; i < 40; ++i) {
    const double mid = 0.5 * (lo + hi);
    (expected_tokens(mid, from) < yield ? lo : hi) = mid;
  }
  const double per_k = std::max(0.0, m.seconds - off.seconds) / from;  // seconds one more proposal adds
  const auto line = [&](int j) { return off.seconds + per_k * j; };
  // Past the cheap rows, the line times the most a measured k there took over it (the GEMM's
  // jump, once seen; 1 until then).
  double jump = 1.0;
  if (cheap_rows_ > 0 && batch * (k + 1) > cheap_rows_)
    for (int j = from + 1; j <= k_max_; ++j)
      if (seen[static_cast<std::size_t>(j)].steps > 0 && batch * (j + 1) > cheap_rows_)
        jump = std::max(jump, seen[static_cast<std::size_t>(j)].seconds / line(j));
  return off.tokens * expected_tokens(hi, k) / (line(k) * jump);
}

bool AdaptiveK::worth_trying(int batch, int k, double best_rate) const {
  if (cheap_rows_ == 0 || batch > cheap_rows_ || batch * (k + 1) <= cheap_rows_) return true;
  const double predicted = predicted_rate(batch, k);
  return predicted == 0.0 || predicted > best_rate;
}

void AdaptiveK::record_step(int batch, int k, long tokens, double seconds) {
  if (k < 0 || k > k_max_ || !(seconds > 0.0)) return;
  Measured& m = at(batch)[static_cast<std::size_t>(k)];
  const auto t = static_cast<double>(tokens);
  if (m.steps == 0) {
    m.tokens = t;
    m.seconds = seconds;
  } else {
    m.tokens += kSmoothing * (t - m.tokens);
    m.seconds += kSmoothing * (seconds - m.seconds);
  }
  ++m.steps;
}

int AdaptiveK::choose(int batch) {
  ++calls_;
  if (k_max_ == 0 || batch < 1) return 0;
  const std::vector<Measured>& seen = at(batch);
  const auto r = [&](int k) { return rate(batch, k); };
  // Climb first: 0, 1, 3, 7, ... (k + 1 rows a sequence: 1, 2, 4, 8, which fill the matmul's
  // tiles of 4 rows, kernels/cpu/ops.cpp; 9 rows would cost a third pass for one row) up to the
  // largest, each tried for kClimbSteps steps, going on only while the last one was faster (a
  // large k at a large batch is an expensive experiment).
  // A k past the cheap rows is not tried when predicted to lose to the fastest so far.
  int previous = -1;
  double fastest = 0.0;
  for (int k = 0;; k = std::min(2 * k + 1, k_max_)) {
    // One step is enough to give up on a k far slower than the last (at a large batch a verify
    // step can cost twice a plain one: the experiment itself is what costs).
    const bool far_slower = previous >= 0 && r(k) > 0.0 && r(k) < kFarSlower * r(previous);
    if (seen[static_cast<std::size_t>(k)].steps < kClimbSteps && !far_slower) {
      if (!worth_trying(batch, k, fastest)) break;
      return k;
    }
    fastest = std::max(fastest, r(k));
    if (previous >= 0 && r(k) <= r(previous) * (previous == 0 ? kMarginOverOff : 1.0)) break;
    if (k == k_max_) break;
    previous = k;
  }
  int best = 0;
  for (int k = 1; k <= k_max_; ++k)
    if (r(k) > std::max(r(best), kMarginOverOff * r(0))) best = k;
  // Probe one k either side; rarely when speculation is off, so that a batch where it does not
  // pay loses at most a few percent to the probes; never one past the cheap rows predicted to lose.
  if (calls_ % (best > 0 ? kProbeEvery : 8 * kProbeEvery) == 0) {
    const int other = (calls_ / kProbeEvery) % 2 ? best + 1 : best - 1;
    const int probe = std::clamp(other, best == 0 ? 1 : 0, k_max_);
    return worth_trying(batch, probe, r(best)) ? probe : best;
  }
  return best;
}

}  // namespace llm::stage06
