#include "nccl_tp_matrices.cuh"

#include <string>

#include "common/error.h"

namespace llm::stage07 {

std::size_t NcclTpMatrices::extra_bytes(int rank, int dim, int max_rows) {
  return rank == 0 ? 0 : static_cast<std::size_t>(max_rows) * static_cast<std::size_t>(dim) * sizeof(float);
}

NcclTpMatrices::NcclTpMatrices(std::unique_ptr<stage04::CudaMatrices> shard, int dim, int max_rows, std::shared_ptr<NcclComm> comm)
    : shard_(std::move(shard)), dim_(dim), max_rows_(max_rows), comm_(std::move(comm)) {
  if (!shard_ || !comm_) throw Error("tensor parallel: NcclTpMatrices without a shard or a communicator");
  if (comm_->rank() != 0) partial_ = cuda::DeviceBuffer<float>(extra_bytes(comm_->rank(), dim, max_rows) / sizeof(float));
}

void NcclTpMatrices::matmul(float* y, const __half* x, int n, int layer, Matrix m, bool accumulate,
                            cuda::CublasGemm& gemm, cudaStream_t stream) {
  if (m != Matrix::wo && m != Matrix::w2) return shard_->matmul(y, x, n, layer, m, accumulate, gemm, stream);
  // Row-parallel: y (+)= this rank's partial product; the sum over the ranks goes into y.
  const std::size_t count = static_cast<std::size_t>(n) * static_cast<std::size_t>(dim_);
  if (comm_->rank() == 0 || !accumulate) {
    shard_->matmul(y, x, n, layer, m, accumulate, gemm, stream);
    comm_->all_reduce(y, y, count, stream);
    return;
  }
  if (n > max_rows_)
    throw Error("tensor parallel: a step of " + std::to_string(n) + " rows, the partial products hold " +
                std::to_string(max_rows_));
  shard_->matmul(partial_.get(), x, n, layer, m, false, gemm, stream);
  comm_->all_reduce(partial_.get(), y, count, stream);
}

void NcclTpMatrices::classify(float* y, const __half* x, int n, cuda::CublasGemm& gemm, cudaStream_t stream) {
  if (comm_->rank() == 0) shard_->classify(y, x, n, gemm, stream);
}

}  // namespace llm::stage07
