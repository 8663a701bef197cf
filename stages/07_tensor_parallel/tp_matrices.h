// tp_matrices.h: a rank's matrices for stage 04's CpuOps: the rank's shard (any CpuMatrices:
// stage 04's fp16 ones or stage 05's quantized ones, built from shard_weights()), plus the two
// all-reduces per layer. CpuOps adds the products of Wo and W2 to the residual stream
// (x += a Wo^T, x += f W2^T); on a rank those products are partial sums over its heads / its
// hidden slice, so the all-reduce goes right after them, before the add: every rank then adds
// the whole update and the residual streams stay the same on every rank. Stage 04's recipe is
// unchanged.
#pragma once

#include <functional>
#include <memory>

#include "stages/04_cuda/cpu_ops.h"

namespace llm::stage07 {

/// x[0..n) = the sum over the ranks (mpi_comm.h's all_reduce_sum, or a stand-in in tests).
using AllReduce = std::function<void(float* x, std::size_t n)>;

/// Seconds a rank spent in all-reduces (waiting for the slowest rank included) and their count;
/// with a barrier hook, wait_seconds is the part spent in the barrier before each all-reduce
/// (waiting for the other ranks) and seconds the all-reduce alone (the transfer).
struct CommTime {
  double seconds = 0.0;
  double wait_seconds = 0.0;
  long calls = 0;
};

class TpMatrices : public stage04::CpuMatrices {
 public:
  /// `shard`: the rank's matrices; `dim`: the residual width (the all-reduced rows' length);
  /// `classifies`: whether this rank computes logits (rank 0 only: it alone samples; the others'
  /// logits are zeros). `clock` gives seconds (for CommTime).
  TpMatrices(std::unique_ptr<stage04::CpuMatrices> shard, int dim, bool classifies, AllReduce all_reduce,
             std::function<double()> clock);
  void matmul(float* y, const float* x, int n, int layer, Matrix m) override;
  void classify(float* y, const float* x, int n) override;
  void embed_row(float* out, int t) override { shard_->embed_row(out, t); }
  const CommTime& comm_time() const { return comm_; }
  /// Calls `barrier` before every all-reduce, to time the waiting apart from the transfer.
  void set_barrier(std::function<void()> barrier) { barrier_ = std::move(barrier); }

 private:
  std::unique_ptr<stage04::CpuMatrices> shard_;
  int dim_;
  bool classifies_;
  AllReduce all_reduce_;
  std::function<double()> clock_;
  std::function<void()> barrier_;
  CommTime comm_;
};

}  // namespace llm::stage07
