// nccl_all_reduce.h: the all-reduce of tp_matrices.h (host buffers) done by NCCL through the
// GPUs, one rank per GPU (nccl_comm.h: the GPU of the rank's local rank; MPI hands out the
// ncclUniqueId). Each call copies x to the GPU, all-reduces it there and copies it back, so the
// CPU backend can run on it and its sums can be checked against MPI's; the CUDA backend keeps
// its activations on the device and all-reduces there (nccl_tp_matrices.cuh). Built only when
// the CUDA toolkit and libnccl are found.
#pragma once

#include <cstddef>
#include <memory>

#include "nccl_comm.h"

namespace llm::stage07 {

class NcclAllReduce {
 public:
  /// Rank `rank` of `ranks`. Throws llm::Error naming the call when NCCL or CUDA fails, or when
  /// the node has fewer GPUs than local ranks. Collective: every rank must construct one.
  NcclAllReduce(int rank, int ranks);
  ~NcclAllReduce();
  NcclAllReduce(const NcclAllReduce&) = delete;
  NcclAllReduce& operator=(const NcclAllReduce&) = delete;
  /// x[0..n) = the sum over the ranks (fp32), through the GPUs.
  void operator()(float* x, std::size_t n);

 private:
  NcclComm comm_;
  cudaStream_t stream_ = nullptr;
  float* device_ = nullptr;
  std::size_t capacity_ = 0;  // floats
};

}  // namespace llm::stage07
