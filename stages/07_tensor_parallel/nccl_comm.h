// nccl_comm.h: one NCCL communicator per rank, one rank per GPU (the CUDA backend of this stage).
// MPI only starts it: rank 0 makes the ncclUniqueId and MPI_Bcast (mpi_comm.h) hands it to the
// others; every collective after that is NCCL's, queued on a CUDA stream like a kernel.
//
// Which GPU: a rank takes the GPU numbered by its *local* rank (its place among the ranks on the
// same node, from the launcher's environment: OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID or
// SLURM_LOCALID; the global rank when none is set), so that `mpirun -np 8` over two 4-GPU nodes
// uses GPUs 0-3 on each. A node with fewer GPUs than ranks is refused, naming both counts.
//
// Failures never hang: every NCCL and CUDA call is checked (llm::Error naming the call); a
// watchdog thread polls ncclCommGetAsyncError every 100 ms and, on an asynchronous error (a peer
// gone, a network fault), prints it, aborts the communicator (ncclCommAbort: the collectives
// waiting on the GPU return) and ends every rank (MPI_Abort). A rank that dies outright is
// mpirun's to handle: it ends the others (stage07_rank_dies tests that on the CPU backend).
// Built only with the CUDA toolkit's NCCL.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <cstddef>
#include <string>
#include <thread>

namespace llm::stage07 {

/// GPUs this process sees (0 without a driver or device).
int cuda_device_count();

/// Throws llm::Error "tensor parallel: <call>: <CUDA's message>" unless rc is cudaSuccess.
void check_cuda(cudaError_t rc, const char* call);

/// This process's place among the ranks on its node, from the launcher's environment
/// (OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID, SLURM_LOCALID), else `rank`.
int local_rank(int rank);

class NcclComm {
 public:
  /// Rank `rank` of `ranks`: selects the GPU of its local rank (cudaSetDevice), then creates the
  /// communicator. Collective over the MPI job: every rank must construct one. Throws llm::Error
  /// naming the call when NCCL or CUDA fails, or the counts when the node has too few GPUs.
  NcclComm(int rank, int ranks);
  /// ncclCommDestroy, or ncclCommAbort after abort() or when an exception is unwinding.
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  int rank() const { return rank_; }
  int ranks() const { return ranks_; }
  int device() const { return device_; }

  /// recv[0..n) = the sum over the ranks of every rank's send[0..n), fp32 device memory, queued on
  /// `stream` (nothing waits). send == recv is in place; ranks may differ in which they pass.
  void all_reduce(const float* send, float* recv, std::size_t n, cudaStream_t stream);
  /// The smallest `v` over the ranks (waits for the result).
  int min_over_ranks(int v);
  /// Ends this rank's NCCL work: collectives still waiting on the GPU return. The communicator
  /// cannot be used after it.
  void abort();

 private:
  void watch();

  int rank_ = 0, ranks_ = 1, device_ = 0;
  ncclComm_t comm_ = nullptr;
  std::atomic<bool> stop_{false};
  std::atomic<bool> aborted_{false};
  std::thread watchdog_;
};

}  // namespace llm::stage07
