// adaptive_k.h: choosing k per step (--spec-k auto). Speculation pays when a verify step's extra
// rows are nearly free (batch 1, memory-bound) and the proposals are often right; as the batch
// grows the step turns compute-bound, every proposal row costs real time, and the best k falls
// to 0. Rather than model the step's cost (it is not linear in its rows: the matmul kernels change
// with the row count, and the draft has its own cost), the controller measures what each k yields:
// for the current batch size (in power-of-two buckets) it keeps a moving average of the tokens per
// second of decode-only steps run with each k, climbs k = 0, 1, 3, 7, ... while each is faster
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
  int k_max_;
  std::map<int, std::vector<double>> rate_;  ///< bucket -> tokens per second for k = 0 .. k_max
  long calls_ = 0;
};

}  // namespace llm::stage06
