// tp_executor.h: stage 03's StepExecutor for one rank of a tensor-parallel group. Every rank
// holds its shard of the weights (shard_weights.h) and of the paged K/V cache (its KV heads, at
// the block numbers rank 0's pool hands out) and runs stage 04's CPU step recipe on them, with
// the all-reduces of tp_matrices.h. Rank 0 owns the engine (scheduler, pool books, sampling):
// before it runs a step it broadcasts the step (step_message.h), and the other ranks, inside
// serve(), run the same step on their shards.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "shard_formats.h"
#include "shard_plan.h"
#include "stages/04_cuda/cpu_ops.h"
#include "tp_matrices.h"

namespace llm::stage07 {

/// How the ranks talk (mpi_comm.h's functions in the executable).
struct TpComm {
  int rank = 0, ranks = 1;
  AllReduce all_reduce;
  std::function<void(std::vector<int>&)> broadcast;  ///< rank 0's ints on every rank
  std::function<double()> clock;                     ///< seconds
  /// Optional (LLM_TP_SPLIT_WAIT=1 in the executable): a barrier before each all-reduce, so that
  /// the time waiting for the slowest rank is measured apart from the transfer.
  std::function<void()> barrier;
  Gather gather;  ///< the classifier's logits to rank 0 (mpi_comm.h's gather_floats); may be empty at 1 rank
};

class TpStepExecutor : public stage03::StepExecutor {
 public:
  /// This rank's shard of `w` (the whole model) under `plan`, stored as `formats` says (default:
  /// stage 04's fp16 weights and K/V). `plan` must have been made with shard_alignment(formats).
  TpStepExecutor(const ModelWeights& w, const ShardPlan& plan, TpComm comm, const ShardFormats& formats = {});
  /// A rank whose shard runs elsewhere (the CUDA backend, nccl_executor.h): `local` runs the
  /// shard, its all-reduces inside; `full`: the whole model's config; `bytes_per_step`: what
  /// weight_bytes_per_step() reports. The host does not time the all-reduces (comm_time() stays
  /// zero): they are queued on the device with the rest of the step. On rank 0 this executor
  /// sends the other ranks kStop itself when it goes (unless stop() was called): `local` holds
  /// the NCCL communicator, whose ncclCommDestroy waits for every rank of the node to destroy
  /// theirs, which the others do only after leaving serve().
  TpStepExecutor(const ModelConfig& full, TpComm comm, std::unique_ptr<stage03::StepExecutor> local,
                 double bytes_per_step);
  /// Rank 0, after steps ran: prints the time in all-reduces vs the whole forward to stderr; on
  /// the CUDA backend, then stop() (if not called yet) before `local` and its communicator go.
  ~TpStepExecutor() override;
  bool uses_pool_storage() const override { return false; }
  std::size_t kv_element_bytes() const override { return local_->kv_element_bytes(); }
  std::size_t kv_scale_bytes() const override { return local_->kv_scale_bytes(); }
  /// The bytes of weights one rank reads per step (its shard of the layers and of the classifier).
  double weight_bytes_per_step() const override { return bytes_per_step_; }
  void begin_run(stage03::BlockPool& pool) override;
  std::vector<float> forward(const stage03::StepBatch& step) override;

  /// Ranks other than 0: runs rank 0's messages until kStop. Throws llm::Error on a bad message.
  void serve();
  /// Rank 0: tells the other ranks to leave serve() (once: a second call does nothing).
  void stop();
  /// Time in all-reduces, and in whole forward steps (all-reduces included), on this rank.
  const CommTime& comm_time() const { return matrices_ ? matrices_->comm_time() : no_comm_; }
  double forward_seconds() const { return forward_seconds_; }
  long steps() const { return steps_; }

 private:
  std::vector<float> run_local(const stage03::StepBatch& step);
  void read_fault();

  ModelConfig full_;  // the whole model's config (the pool's books are kept in its terms)
  TpComm comm_;
  TpMatrices* matrices_ = nullptr;  // owned by local_'s CpuOps (null on the CUDA backend)
  CommTime no_comm_;
  std::unique_ptr<stage03::StepExecutor> local_;
  std::unique_ptr<stage03::BlockPool> worker_pool_;  // ranks > 0: the books' shape, for begin_run
  double bytes_per_step_ = 0.0;
  double forward_seconds_ = 0.0;
  long steps_ = 0;
  long exit_at_step_ = -1;  // LLM_TP_EXIT_RANK / LLM_TP_EXIT_STEP (the failure test's fault)
  bool stop_when_destroyed_ = false;  // rank 0 on the CUDA backend (see the second constructor)
  bool stopped_ = false;              // stop() was called
};

}  // namespace llm::stage07
