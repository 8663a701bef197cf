// nccl_executor.cu: nccl_executor.h with nvcc and the toolkit's NCCL.
#include "nccl_executor.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "fp16_cuda_matrices.cuh"
#include "nccl_comm.h"
#include "nccl_tp_matrices.cuh"
#include "shard_weights.h"
#include "stages/04_cuda/cuda_executor.cuh"
#include "stages/04_cuda/gpu_engine.h"
#include "stages/04_cuda/packed_weights.h"

namespace llm::stage07 {

namespace {

/// Rank 0's options on every rank: [graphs, max_running, token_budget, block_size,
/// max_useful_blocks, memory_fraction's 8 bytes as two ints].
stage04::CudaOptions share_options(const stage04::CudaOptions& o, const TpComm& comm) {
  std::vector<int> m(7);
  if (comm.rank == 0) {
    m = {o.cuda_graphs ? 1 : 0, o.max_running, o.token_budget, o.block_size, o.max_useful_blocks, 0, 0};
    static_assert(sizeof(double) == 2 * sizeof(int));
    std::memcpy(&m[5], &o.memory_fraction, sizeof(double));
  }
  comm.broadcast(m);
  if (m.size() != 7) throw Error("tensor parallel: CUDA options of " + std::to_string(m.size()) + " ints from rank 0");
  stage04::CudaOptions out;
  out.cuda_graphs = m[0] != 0;
  out.max_running = m[1];
  out.token_budget = m[2];
  out.block_size = m[3];
  out.max_useful_blocks = m[4];
  std::memcpy(&out.memory_fraction, &m[5], sizeof(double));
  return out;
}

}  // namespace

std::string nccl_backend_unavailable_reason() { return ""; }

std::unique_ptr<TpStepExecutor> make_nccl_executor(const ModelWeights& w, const ShardPlan& plan, TpComm comm,
                                                   const stage04::CudaOptions& options, int* num_blocks) {
  if (plan.ranks != comm.ranks || static_cast<int>(plan.shards.size()) != comm.ranks)
    throw Error("tensor parallel: a plan for " + std::to_string(plan.ranks) + " ranks on " + std::to_string(comm.ranks) +
                " ranks");
  const stage04::CudaOptions opts = share_options(options, comm);
  const int rank = comm.rank;
  const RankShard& mine = plan.shards[static_cast<std::size_t>(rank)];
  // The shard's shape (shard_weights gives it this config), checked before anything is cut or
  // any GPU is touched.
  ModelConfig sc = w.config;
  sc.n_heads = mine.n_heads;
  sc.n_kv_heads = static_cast<int>(mine.kv_heads.size());
  sc.hidden_dim = mine.hidden;
  const std::string shape = stage04::cuda_unsupported_model(sc);
  if (!shape.empty())
    throw Error("--backend cuda: rank " + std::to_string(rank) + "'s shard cannot run on the CUDA kernels: " + shape);

  // Every rank on its GPU, one communicator (collective: before anything is planned, so that the
  // memory NCCL takes is not counted as free).
  auto nccl = std::make_shared<NcclComm>(rank, comm.ranks);
  ModelWeights shard = shard_weights(w, mine);
  // The classifier stays whole, on rank 0 alone (nccl_tp_matrices.cuh); the others keep none
  // (tied: their embedding stands in, never run).
  shard.output = rank == 0 ? w.output : std::vector<float>{};

  stage04::CudaWeightPlan weights;
  weights.device_bytes = stage04::packed_weight_bytes(shard.config, shard.output.empty()) +
                         NcclTpMatrices::extra_bytes(rank, shard.config.dim, opts.token_budget);
  weights.make_ops = [&](const stage04::CudaOpsLimits& limits, double* bytes_per_step) {
    const stage04::PackedWeights packed = stage04::pack_weights(shard);
    *bytes_per_step = packed.bytes_per_step();
    auto matrices = std::make_unique<NcclTpMatrices>(std::make_unique<Fp16CudaMatrices>(packed), shard.config.dim,
                                                     limits.token_budget, nccl);
    return std::make_unique<stage04::CudaOps>(shard, std::move(matrices), limits);
  };
  int fits = 0;
  std::unique_ptr<stage03::StepExecutor> local = stage04::make_cuda_executor(shard.config, weights, opts, &fits);
  // Rank 0's pool hands out the block numbers every rank's cache is addressed by: it must fit on
  // every rank.
  const int agreed = nccl->min_over_ranks(fits);
  if (num_blocks) *num_blocks = agreed;
  const double bytes = local->weight_bytes_per_step();
  return std::make_unique<TpStepExecutor>(w.config, std::move(comm), std::move(local), bytes);
}

}  // namespace llm::stage07
