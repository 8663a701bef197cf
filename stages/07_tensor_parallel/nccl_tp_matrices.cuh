// nccl_tp_matrices.cuh: the CUDA twin of tp_matrices.h. A rank's matrices for stage 04's CudaOps:
// its shard (any CudaMatrices; Fp16CudaMatrices for stage 04's fp16 weights) plus the two
// all-reduces per layer, by NCCL on the stream CudaOps queues everything on, so the device never
// waits for the host and a decode step, all-reduces included, can still be captured in one CUDA
// graph (NCCL's collectives can be captured).
//
// CudaOps adds the products of Wo and W2 into the fp32 residual stream x in the matmul's epilogue
// (accumulate). On a rank those products are partial sums, so:
//   rank 0:        x += a Wo_0^T (the epilogue, as stage 04), then all-reduce x in place
//   ranks 1..N-1:  p  = a Wo_r^T into a buffer of the rank's own, then all-reduce p into x
// Every rank then holds x + sum_r a Wo_r^T: the residual is counted once (rank 0's) and no
// kernel is added to stage 04's step. At one rank the all-reduce is NCCL's in-place no-op, so
// TP=1 through this path is stage 04's step plus two empty collectives per layer. The sum order
// differs from the CPU path's x + (sum of products), within the same fp32 rounding.
//
// The classifier stays whole on rank 0 (the others do not run it: their logits are never read):
// the CPU path's split by vocabulary needs a gather of the logits, not built for the device.
#pragma once

#include <memory>

#include "nccl_comm.h"
#include "stages/04_cuda/cuda_ops.cuh"

namespace llm::stage07 {

class NcclTpMatrices : public stage04::CudaMatrices {
 public:
  /// `shard`: the rank's matrices; `dim`: the residual width; `max_rows`: the most rows of a step
  /// (CudaOpsLimits::token_budget: sizes the partial-product buffer of ranks > 0, [max_rows, dim]
  /// fp32, device memory); `comm`: the rank's communicator (shared: kept until this goes, which
  /// CudaOps does before its stream).
  NcclTpMatrices(std::unique_ptr<stage04::CudaMatrices> shard, int dim, int max_rows, std::shared_ptr<NcclComm> comm);
  void matmul(float* y, const __half* x, int n, int layer, Matrix m, bool accumulate, cuda::CublasGemm& gemm,
              cudaStream_t stream) override;
  void classify(float* y, const __half* x, int n, cuda::CublasGemm& gemm, cudaStream_t stream) override;
  const __half* embed_table() const override { return shard_->embed_table(); }
  bool graph_capable(int n) const override { return shard_->graph_capable(n); }

  /// Device bytes this object adds to its shard's: the partial-product buffer of ranks > 0.
  static std::size_t extra_bytes(int rank, int dim, int max_rows);

 private:
  std::unique_ptr<stage04::CudaMatrices> shard_;
  int dim_, max_rows_;
  std::shared_ptr<NcclComm> comm_;
  cuda::DeviceBuffer<float> partial_;  // ranks > 0: [max_rows, dim]
};

}  // namespace llm::stage07
