#include "nccl_all_reduce.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include "common/error.h"
#include "mpi_comm.h"

namespace llm::stage07 {

namespace {

void cuda_check(cudaError_t rc, const char* call) {
  if (rc != cudaSuccess) throw Error(std::string("tensor parallel: ") + call + ": " + cudaGetErrorString(rc));
}

void nccl_check(ncclResult_t rc, const char* call) {
  if (rc != ncclSuccess) throw Error(std::string("tensor parallel: ") + call + ": " + ncclGetErrorString(rc));
}

}  // namespace

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

struct NcclAllReduce::State {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  float* device = nullptr;
  std::size_t capacity = 0;  // floats
};

NcclAllReduce::NcclAllReduce(int rank, int ranks) {
  const int gpus = cuda_device_count();
  if (gpus < ranks)
    throw Error("tensor parallel: NCCL needs one GPU per rank: " + std::to_string(ranks) + " ranks, " +
                std::to_string(gpus) + " GPU(s)");
  cuda_check(cudaSetDevice(rank), "cudaSetDevice");
  ncclUniqueId id;
  if (rank == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
  broadcast_bytes(&id, sizeof id);
  s_ = new State;
  try {
    cuda_check(cudaStreamCreate(&s_->stream), "cudaStreamCreate");
    nccl_check(ncclCommInitRank(&s_->comm, ranks, id, rank), "ncclCommInitRank");
  } catch (...) {
    delete s_;
    throw;
  }
}

NcclAllReduce::~NcclAllReduce() {
  if (s_->comm) ncclCommDestroy(s_->comm);
  if (s_->device) cudaFree(s_->device);
  if (s_->stream) cudaStreamDestroy(s_->stream);
  delete s_;
}

void NcclAllReduce::operator()(float* x, std::size_t n) {
  if (n > s_->capacity) {
    if (s_->device) cuda_check(cudaFree(s_->device), "cudaFree");
    s_->device = nullptr;
    cuda_check(cudaMalloc(&s_->device, n * sizeof(float)), "cudaMalloc");
    s_->capacity = n;
  }
  cuda_check(cudaMemcpyAsync(s_->device, x, n * sizeof(float), cudaMemcpyHostToDevice, s_->stream), "cudaMemcpyAsync");
  nccl_check(ncclAllReduce(s_->device, s_->device, n, ncclFloat, ncclSum, s_->comm, s_->stream), "ncclAllReduce");
  cuda_check(cudaMemcpyAsync(x, s_->device, n * sizeof(float), cudaMemcpyDeviceToHost, s_->stream), "cudaMemcpyAsync");
  cuda_check(cudaStreamSynchronize(s_->stream), "cudaStreamSynchronize");
}

}  // namespace llm::stage07
