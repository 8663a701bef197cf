// tp_matrices.h: a rank's matrices for stage 04's CpuOps: the rank's shard (any CpuMatrices:
// stage 04's fp16 ones or stage 05's quantized ones, built from shard_weights()), plus the two
// all-reduces per layer. CpuOps adds the products of Wo and W2 to the residual stream
// (x += a Wo^T, x += f W2^T); on a rank those products are partial sums over its heads / its
// hidden slice, so the all-reduce goes right after them, before the add: every rank then adds
// the whole update and the residual streams stay the same on every rank. The classifier is split
// by vocabulary: each rank computes the logits of its rows of it, and rank 0 gathers them (the
// one gather per step; it alone samples). Stage 04's recipe is unchanged.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "stages/04_cuda/cpu_ops.h"

namespace llm::stage07 {

/// x[0..n) = the sum over the ranks (mpi_comm.h's all_reduce_sum, or a stand-in in tests).
using AllReduce = std::function<void(float* x, std::size_t n)>;
/// Rank 0's all[0..sum of counts) = every rank's local[0..counts[r]) in rank order (MPI_Gatherv);
/// `all` is not touched on the other ranks.
using Gather = std::function<void(const float* local, float* all, const std::vector<int>& counts)>;

/// Seconds a rank spent in all-reduces (waiting for the slowest rank included) and their count;
/// with a barrier hook, wait_seconds is the part spent in the barrier before each all-reduce
/// (waiting for the other ranks) and seconds the all-reduce alone (the transfer).
/// gather_seconds / gathers: the classifier's logits gathered to rank 0 (one per step).
/// by_rows: the same split by the all-reduce's row count (tokens in the step; each row is dim
/// floats), so that a bench can read the cost at 1, 16 or 128 tokens per step.
struct CommTime {
  struct Part {
    double seconds = 0.0, wait_seconds = 0.0;
    long calls = 0;
  };
  double seconds = 0.0;
  double wait_seconds = 0.0;
  long calls = 0;
  double gather_seconds = 0.0;
  long gathers = 0;
  std::map<int, Part> by_rows;
};

class TpMatrices : public stage04::CpuMatrices {
 public:
  /// `shard`: the rank's matrices (shard_weights); `classifier`: its rows of the classifier
  /// (shard_classifier: classify gives [n, vocab_counts[rank]]); `dim`: the residual width (the
  /// all-reduced rows' length); `vocab_counts`: every rank's classifier rows, in rank order.
  /// classify gives the whole logits [n, vocab] on rank 0 (the others' are not written).
  /// `gather` may be empty with one rank. `clock` gives seconds (for CommTime).
  TpMatrices(std::unique_ptr<stage04::CpuMatrices> shard, std::unique_ptr<stage04::CpuMatrices> classifier, int dim,
             int rank, std::vector<int> vocab_counts, AllReduce all_reduce, Gather gather,
             std::function<double()> clock);
  void matmul(float* y, const float* x, int n, int layer, Matrix m) override;
  void classify(float* y, const float* x, int n) override;
  void embed_row(float* out, int t) override { shard_->embed_row(out, t); }
  const CommTime& comm_time() const { return comm_; }
  /// Calls `barrier` before every all-reduce, to time the waiting apart from the transfer.
  void set_barrier(std::function<void()> barrier) { barrier_ = std::move(barrier); }

 private:
  std::unique_ptr<stage04::CpuMatrices> shard_, classifier_;
  int dim_, rank_;
  std::vector<int> vocab_counts_;
  AllReduce all_reduce_;
  Gather gather_;
  std::vector<float> local_, all_;  // classify: this rank's logits, and rank 0's gathered ones
  std::function<double()> clock_;
  std::function<void()> barrier_;
  CommTime comm_;
};

}  // namespace llm::stage07
