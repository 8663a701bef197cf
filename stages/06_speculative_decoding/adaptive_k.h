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
//
// One experiment it does not run blind: a k whose verify rows, batch * (k + 1), cross the matmul's
// cheap-row limit (kSmallBatchRows: above it Eigen's GEMM, costlier per row on small shapes) while
// k = 0's rows do not. Such a k is tried (climb or probe) only if a prediction from what was
// measured below the limit says it can beat the best measured rate: tokens per sequence and step
// (1 - a^(k+1)) / (1 - a), with the acceptance a solved from a measured k, over seconds growing
// linearly in k as they grew from k = 0 to that k. The seconds flatter the large k (the GEMM costs
// more per row than the line), and so does a constant acceptance where it falls along a proposal;
// sequences without any proposal (prompt lookup finding no match) lower the solved a instead.
// Once a k past the limit has run, its seconds over the line (the GEMM's jump, measured) scale the
// line for every k past the limit: one costly experiment is not repeated by the probes.
#pragma once

#include <map>
#include <vector>

#include "kernels/cpu/ops.h"

namespace llm::stage06 {

/// The per-step choice of k from measured tokens per second at each k and batch size.
class AdaptiveK {
 public:
  /// k in 0 .. k_max; `cheap_rows`: the most rows a step can carry before the matmul switches to
  /// a costlier kernel (0 = no such limit).
  explicit AdaptiveK(int k_max, int cheap_rows = cpu::kSmallBatchRows);
  /// k for the coming step of `batch` decoding sequences (0 = no speculation).
  int choose(int batch);
  /// A decode-only step of `batch` sequences asked for k proposals each and emitted `tokens` in
  /// `seconds` (proposing included).
  void record_step(int batch, int k, long tokens, double seconds);
  /// The measured tokens per second of k at `batch` (0 = not measured yet).
  double rate(int batch, int k) const;
  /// The tokens per second k would reach at `batch`, predicted from k = 0 and the largest measured
  /// k whose rows stay within the cheap-row limit (0 = nothing to predict from): step seconds linear
  /// in k (past the limit, times the largest measured excess of a k there), constant acceptance.
  double predicted_rate(int batch, int k) const;

 private:
  static int bucket(int batch);
  /// One k's decode-only steps at one batch bucket: moving averages of a step's tokens and seconds.
  struct Measured {
    double tokens = 0.0, seconds = 0.0;
    int steps = 0;
  };
  std::vector<Measured>& at(int batch);
  /// False for a k past the cheap-row limit (k = 0 within it) predicted to lose to `best_rate`.
  bool worth_trying(int batch, int k, double best_rate) const;
  int k_max_;
  int cheap_rows_;
  std::map<int, std::vector<Measured>> seen_;  ///< bucket -> k = 0 .. k_max
  long calls_ = 0;
};

}  // namespace llm::stage06
