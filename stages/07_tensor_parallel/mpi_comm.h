// mpi_comm.h: the only file of this stage that includes <mpi.h>. One process per rank
// (mpirun -np N); without mpirun the process is rank 0 of 1. Every call checks MPI's return code
// (the communicator returns errors instead of aborting: MPI_ERRORS_RETURN) and throws llm::Error
// naming the call. A rank that dies is OpenMPI's to handle: mpirun then ends every other rank
// (tested by stage07_rank_dies), so no collective waits forever for it.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace llm::stage07 {

/// MPI_Init on construction, MPI_Finalize on destruction (one per process). Sets OpenMPI's
/// mpi_yield_when_idle to 1 unless the environment sets it (a waiting rank yields its core).
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  int rank() const { return rank_; }
  int size() const { return size_; }
  /// Ends every rank of the job with `code` (MPI_Abort): for an error on a rank other than 0,
  /// which has no other way to stop the ranks waiting for it in a collective.
  [[noreturn]] static void abort_all(int code);

 private:
  int rank_ = 0, size_ = 1;
};

/// x[0..n) = the sum over the ranks of every rank's x (MPI_Allreduce, in place, fp32).
void all_reduce_sum(float* x, std::size_t n);
/// Rank 0's all[0..sum of counts) = every rank's local[0..counts[rank]) in rank order
/// (MPI_Gatherv); `all` is only written (and may be null) on the other ranks.
void gather_floats(const float* local, float* all, const std::vector<int>& counts);
/// Rank 0's `ints` (size included) on every rank (two MPI_Bcast: the count, then the values).
void broadcast_ints(std::vector<int>& ints);
/// Rank 0's `bytes` bytes at `data` on every rank (one MPI_Bcast; NCCL's ncclUniqueId).
void broadcast_bytes(void* data, std::size_t bytes);
/// Waits until every rank has called it (MPI_Barrier).
void barrier();
/// Seconds since an arbitrary start (MPI_Wtime).
double wall_seconds();

}  // namespace llm::stage07
