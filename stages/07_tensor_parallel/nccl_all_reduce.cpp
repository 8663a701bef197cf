#include "nccl_all_reduce.h"

namespace llm::stage07 {

NcclAllReduce::NcclAllReduce(int rank, int ranks) : comm_(rank, ranks) {
  check_cuda(cudaStreamCreate(&stream_), "cudaStreamCreate");
}

NcclAllReduce::~NcclAllReduce() {
  if (device_) (void)cudaFree(device_);
  if (stream_) (void)cudaStreamDestroy(stream_);
}

void NcclAllReduce::operator()(float* x, std::size_t n) {
  if (n > capacity_) {
    if (device_) check_cuda(cudaFree(device_), "cudaFree");
    device_ = nullptr;
    check_cuda(cudaMalloc(&device_, n * sizeof(float)), "cudaMalloc");
    capacity_ = n;
  }
  check_cuda(cudaMemcpyAsync(device_, x, n * sizeof(float), cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
  comm_.all_reduce(device_, device_, n, stream_);
  check_cuda(cudaMemcpyAsync(x, device_, n * sizeof(float), cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
  check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
}

}  // namespace llm::stage07
