// adaptive_k.h: choosing k per step (--spec-k auto). Speculation pays when a verify step's extra
// rows are nearly free (batch 1, memory-bound) and the proposals are often right; as the batch
// grows the step turns compute-bound, every proposal row costs real time, and the best k falls
// to 0. Rather than model the step's cost (it is not linear in its rows: the matmul kernels change
// with the row count, and the draft has its own cost), the controller measures what each k yields:
// for the current batch size (in power-of-two buckets) it keeps moving averages of the tokens and
// of the seconds of decode-only steps run with each k (their ratio is the k's rate: one step that
// accepted nothing, or one that the OS delayed, moves it less than an average of per-step rates
// would), climbs k = 0, 1, 3, 7, ... (two steps each, one if far slower) while each is faster
// than the last, then takes the best (a k > 0 only when it measures 3% faster than k = 0),
// probing one k either side now and then so that a change (acceptance falling, the batch growing)
// is seen. The acceptance rate is part of what it measures: a rejected proposal yields no token.
#pragma once

#include <map>
#include <vector>

namespace llm::stage06 {

/// The per-step choice of k from measured tokens per second at each k and batch size.
class AdaptiveK {
 public:
  explicit AdaptiveK(int k_max);
  /// k for the coming step of `batch` decoding sequences (0 = no speculation).
  int choose(int batch);
  /// A decode-only step of `batch` sequences asked for k proposals each and emitted `tokens` in
  /// `seconds` (proposing included).
  void record_step(int batch, int k, long tokens, double seconds);
  /// The measured tokens per second of k at `batch` (0 = not measured yet).
  double rate(int batch, int k) const;

 private:
  static int bucket(int batch);
  /// One k's decode-only steps at one batch bucket: moving averages of a step's tokens and seconds.
  struct Measured {
    double tokens = 0.0, seconds = 0.0;
    int steps = 0;
  };
  std::vector<Measured>& at(int batch);
  int k_max_;
  std::map<int, std::vector<Measured>> seen_;  ///< bucket -> k = 0 .. k_max
  long calls_ = 0;
};

}  // namespace llm::stage06
