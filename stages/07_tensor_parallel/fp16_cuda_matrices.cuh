// fp16_cuda_matrices.cuh: a model's fp16 matrices on the device as a stage 04 CudaMatrices (the
// twin of stage 04's fp16_cpu_matrices): the same packed layout (packed_weights.h) and the same
// fp16_matmul (GEMV for decode rows, cuBLAS for more) that CudaOps runs on its own weights, so a
// rank's shard computes exactly what stage 04 computes on a model of the shard's shape. Stage 07
// wraps it in NcclTpMatrices (nccl_tp_matrices.cuh) to add the all-reduces.
#pragma once

#include <cstddef>
#include <vector>

#include "stages/04_cuda/cuda_ops.cuh"
#include "stages/04_cuda/packed_weights.h"

namespace llm::stage07 {

class Fp16CudaMatrices : public stage04::CudaMatrices {
 public:
  /// Uploads w's matrices, its embedding and its classifier (the embedding when tied).
  explicit Fp16CudaMatrices(const stage04::PackedWeights& w);
  void matmul(float* y, const __half* x, int n, int layer, Matrix m, bool accumulate, cuda::CublasGemm& gemm,
              cudaStream_t stream) override;
  void classify(float* y, const __half* x, int n, cuda::CublasGemm& gemm, cudaStream_t stream) override;
  const __half* embed_table() const override { return embed_; }
  /// A GEMV for every matrix: n <= kGemvMaxRows and every input width a multiple of 8.
  bool graph_capable(int n) const override;

 private:
  struct Layer {
    const __half *wqkv = nullptr, *wo = nullptr, *w13 = nullptr, *w2 = nullptr;
  };
  const __half* upload(const std::vector<std::uint16_t>& bits, std::size_t expect, const char* what);

  ModelConfig c_;
  std::vector<cuda::DeviceBuffer<__half>> store_;
  const __half* embed_ = nullptr;       // [vocab, dim]
  const __half* classifier_ = nullptr;  // [vocab, dim] (== embed_ when tied)
  std::vector<Layer> layers_;
};

}  // namespace llm::stage07
