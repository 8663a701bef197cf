// nccl_all_reduce.h: the all-reduce of tp_matrices.h done by NCCL (the CUDA toolkit's
// collective library), one rank per GPU: rank r uses GPU r, and MPI only hands out the
// ncclUniqueId (rank 0 creates it, MPI_Bcast gives it to the others). This is the NCCL half of
// the stage as far as it goes: it reduces host buffers (copy to the GPU, ncclAllReduce in place,
// copy back), so the CPU backend can run on it; the CUDA backend keeping activations on the
// device is not built. Built only when the CUDA toolkit and libnccl are found.
#pragma once

#include <cstddef>
#include <string>

namespace llm::stage07 {

/// GPUs this process sees (0 without a driver or device).
int cuda_device_count();

class NcclAllReduce {
 public:
  /// Rank `rank` of `ranks` on GPU `rank`. Throws llm::Error naming the call when NCCL or CUDA
  /// fails, or when there are fewer GPUs than ranks. Collective: every rank must construct one.
  NcclAllReduce(int rank, int ranks);
  ~NcclAllReduce();
  NcclAllReduce(const NcclAllReduce&) = delete;
  NcclAllReduce& operator=(const NcclAllReduce&) = delete;
  /// x[0..n) = the sum over the ranks (fp32), through the GPUs.
  void operator()(float* x, std::size_t n);

 private:
  struct State;
  State* s_ = nullptr;
};

}  // namespace llm::stage07
