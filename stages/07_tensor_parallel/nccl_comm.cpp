#include "nccl_comm.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

#include "common/error.h"
#include "mpi_comm.h"

namespace llm::stage07 {

namespace {

void nccl_check(ncclResult_t rc, const char* call) {
  if (rc != ncclSuccess) throw Error(std::string("tensor parallel: ") + call + ": " + ncclGetErrorString(rc));
}

}  // namespace

void check_cuda(cudaError_t rc, const char* call) {
  if (rc != cudaSuccess) throw Error(std::string("tensor parallel: ") + call + ": " + cudaGetErrorString(rc));
}

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

int local_rank(int rank) {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') continue;
    char* end = nullptr;
    const long r = std::strtol(v, &end, 10);
    if (*end != '\0' || r < 0 || r > 1 << 20)
      throw Error(std::string("tensor parallel: ") + name + "=" + v + ": not a local rank");
    return static_cast<int>(r);
  }
  return rank;
}

NcclComm::NcclComm(int rank, int ranks) : rank_(rank), ranks_(ranks) {
  if (ranks < 1 || rank < 0 || rank >= ranks)
    throw Error("tensor parallel: rank " + std::to_string(rank) + " of " + std::to_string(ranks));
  const int gpus = cuda_device_count();
  device_ = local_rank(rank);
  if (device_ >= gpus)
    throw Error("tensor parallel: NCCL needs one GPU per rank: rank " + std::to_string(rank) + " is local rank " +
                std::to_string(device_) + " on a node with " + std::to_string(gpus) + " GPU(s)");
  check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  ncclUniqueId id{};
  if (rank == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
  broadcast_bytes(&id, sizeof id);
  nccl_check(ncclCommInitRank(&comm_, ranks, id, rank), "ncclCommInitRank");
  watchdog_ = std::thread([this] { watch(); });
}

NcclComm::~NcclComm() {
  stop_ = true;
  if (watchdog_.joinable()) watchdog_.join();
  if (comm_ == nullptr || aborted_) return;
  // Unwinding after an error: a peer may never join a collective this rank queued; destroying
  // would wait for it. Abort instead (the ranks are ended by MPI_Abort right after).
  if (std::uncaught_exceptions() > 0)
    (void)ncclCommAbort(comm_);
  else
    (void)ncclCommDestroy(comm_);
}

void NcclComm::watch() {
  while (!stop_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (aborted_) return;
    ncclResult_t state = ncclSuccess;
    const ncclResult_t rc = ncclCommGetAsyncError(comm_, &state);
    if (rc == ncclSuccess && (state == ncclSuccess || state == ncclInProgress)) continue;
    std::fprintf(stderr, "rank %d: error: tensor parallel: NCCL: %s (%s); ending every rank\n", rank_,
                 ncclGetErrorString(rc != ncclSuccess ? rc : state), ncclGetLastError(comm_));
    abort();
    MpiSession::abort_all(1);
  }
}

void NcclComm::all_reduce(const float* send, float* recv, std::size_t n, cudaStream_t stream) {
  if (aborted_) throw Error("tensor parallel: an all-reduce on an aborted NCCL communicator");
  nccl_check(ncclAllReduce(send, recv, n, ncclFloat, ncclSum, comm_, stream), "ncclAllReduce");
}

int NcclComm::min_over_ranks(int v) {
  int* d = nullptr;
  check_cuda(cudaMalloc(&d, sizeof(int)), "cudaMalloc");
  int out = v;
  try {
    check_cuda(cudaMemcpy(d, &v, sizeof(int), cudaMemcpyHostToDevice), "cudaMemcpy");
    nccl_check(ncclAllReduce(d, d, 1, ncclInt32, ncclMin, comm_, nullptr), "ncclAllReduce (min)");
    check_cuda(cudaMemcpy(&out, d, sizeof(int), cudaMemcpyDeviceToHost), "cudaMemcpy");
  } catch (...) {
    (void)cudaFree(d);
    throw;
  }
  (void)cudaFree(d);
  return out;
}

void NcclComm::abort() {
  if (aborted_.exchange(true) || comm_ == nullptr) return;
  (void)ncclCommAbort(comm_);
}

}  // namespace llm::stage07
