#include "mpi_comm.h"

#include <mpi.h>

#include <climits>
#include <cstdlib>

#include "common/error.h"

namespace llm::stage07 {

namespace {

void check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw Error(std::string("tensor parallel: ") + call + " failed: " + std::string(text, static_cast<std::size_t>(len)));
}

}  // namespace

MpiSession::MpiSession(int* argc, char*** argv) {
  // A rank waiting in a collective yields its core between polls instead of spinning on it
  // (OpenMPI spins when not oversubscribed): on a machine whose cores are shared, a spinning rank
  // takes the core its partner needs to reach the collective (measured: TP = 2 on 2 loaded cores
  // 1.6-1.9x slower spinning). `mpirun --mca mpi_yield_when_idle 0` (or the variable) still wins.
  setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
  check(MPI_Init(argc, argv), "MPI_Init");
  check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
  check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
}

MpiSession::~MpiSession() { MPI_Finalize(); }

void MpiSession::abort_all(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; this is for the compiler
}

void all_reduce_sum(float* x, std::size_t n) {
  if (n > static_cast<std::size_t>(INT_MAX)) throw Error("tensor parallel: all-reduce of " + std::to_string(n) + " floats");
  check(MPI_Allreduce(MPI_IN_PLACE, x, static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
}

void gather_floats(const float* local, float* all, const std::vector<int>& counts) {
  int rank = 0;
  check(MPI_Comm_rank(MPI_COMM_WORLD, &rank), "MPI_Comm_rank");
  std::vector<int> displs(counts.size(), 0);
  long long at = 0;
  for (std::size_t r = 0; r < counts.size(); ++r) {
    if (at > INT_MAX) throw Error("tensor parallel: a gather of " + std::to_string(at) + "+ floats");
    displs[r] = static_cast<int>(at);
    at += counts[r];
  }
  check(MPI_Gatherv(local, counts[static_cast<std::size_t>(rank)], MPI_FLOAT, all, counts.data(), displs.data(),
                    MPI_FLOAT, 0, MPI_COMM_WORLD),
        "MPI_Gatherv");
}

void broadcast_ints(std::vector<int>& ints) {
  int n = static_cast<int>(ints.size());
  check(MPI_Bcast(&n, 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Bcast (count)");
  ints.resize(static_cast<std::size_t>(n));
  if (n > 0) check(MPI_Bcast(ints.data(), n, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Bcast (values)");
}

void broadcast_bytes(void* data, std::size_t bytes) {
  if (bytes > static_cast<std::size_t>(INT_MAX)) throw Error("tensor parallel: broadcast of " + std::to_string(bytes) + " bytes");
  check(MPI_Bcast(data, static_cast<int>(bytes), MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast (bytes)");
}

void barrier() { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

double wall_seconds() { return MPI_Wtime(); }

}  // namespace llm::stage07
