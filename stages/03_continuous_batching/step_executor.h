// step_executor.h: what runs one planned step. The scheduler decides which rows a step holds;
// an executor turns those rows into logits. Stage 03's executor is the shared CPU forward pass
// over the pool's host memory (PagedKvCache); stage 04 plugs in one that runs on the GPU, with
// the same scheduler, pool bookkeeping and sampling around it.
#pragma once

#include <span>
#include <vector>

#include "block_pool.h"
#include "common/forward.h"
#include "common/model_weights.h"
#include "paged_attention.h"

namespace llm::stage03 {

/// One step's rows as the engine lays them out: the chunks' tokens one after another.
///   tokens, positions: [n]: chunk by chunk, each chunk's tokens at their own positions
///   logit_rows:        rows whose logits are wanted (one per sampling chunk), in order
///   chunks:            per chunk: its sequence's block table, first position and row count
struct StepBatch {
  std::span<const int> tokens;
  std::span<const int> positions;
  std::span<const int> logit_rows;
  std::span<const StepRows> chunks;
};

/// Runs steps for the engine.
class StepExecutor {
 public:
  virtual ~StepExecutor() = default;
  /// Whether the BlockPool should hold K/V in host memory (false when the executor keeps its
  /// own K/V storage, indexed by the same block numbers).
  virtual bool uses_pool_storage() const = 0;
  /// Bytes of one stored K or V value (the pool's accounting: 4 for fp32, 2 for fp16).
  virtual std::size_t kv_element_bytes() const = 0;
  /// Bytes each token's K (and V) row stores per KV head besides its values (stage 05's int8/fp8
  /// scale); the pool's accounting adds them.
  virtual std::size_t kv_scale_bytes() const { return 0; }
  /// Bytes of weights one decode step reads (the decode roofline's numerator).
  virtual double weight_bytes_per_step() const = 0;
  /// Called when a run starts, with the pool the scheduler hands blocks out of.
  virtual void begin_run(BlockPool& pool) = 0;
  /// Runs the step; returns logits [logit_rows.size(), vocab] in the order of logit_rows.
  virtual std::vector<float> forward(const StepBatch& step) = 0;
};

/// Stage 03's executor: the shared CPU forward pass (common/forward.h) with attention through
/// the pool's block tables (PagedKvCache).
class CpuPagedExecutor : public StepExecutor {
 public:
  /// Keeps a reference to the weights; they must outlive the executor.
  explicit CpuPagedExecutor(const ModelWeights& weights) : w_(weights) {}
  bool uses_pool_storage() const override { return true; }
  std::size_t kv_element_bytes() const override { return sizeof(float); }
  double weight_bytes_per_step() const override { return llm::weight_bytes_per_step(w_); }
  void begin_run(BlockPool& pool) override;
  std::vector<float> forward(const StepBatch& step) override;

 private:
  const ModelWeights& w_;
  BlockPool* pool_ = nullptr;
  ForwardScratch scratch_;
};

}  // namespace llm::stage03
