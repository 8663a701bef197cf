// nccl_executor.h: stage 07's CUDA backend, one rank per GPU. Each rank cuts its shard out of the
// whole model with the CPU path's plan (shard_plan.h, shard_weights.h), and runs it on stage 04's
// CUDA executor (cuda_executor.cuh: the same step recipe, memory plan and CUDA graphs) with its
// matrices wrapped in NcclTpMatrices (nccl_tp_matrices.cuh: the all-reduces after Wo and W2 by
// NCCL, on the executor's stream). Rank 0's engine drives the others exactly as on the CPU
// backend (tp_executor.h: each step broadcast with MPI, the others serve()).
//
// Plain C++: main.cpp includes it in every build. A build without nvcc or without the toolkit's
// NCCL has the entry points too (nccl_executor_none.cpp); they say why they cannot run.
//
// Status: built and its CPU side tested; NOT YET RUN ON A GPU (no GPU was available).
#pragma once

#include <memory>
#include <string>

#include "shard_plan.h"
#include "stages/04_cuda/backend.h"
#include "tp_executor.h"

namespace llm::stage07 {

/// The column alignment of the CUDA backend's splits (plan_shards' `align`): the GEMV reads rows
/// 8 fp16 at a time, so every rank's widths (its heads x head_dim, its SwiGLU slice) must be
/// multiples of 8.
inline constexpr int kCudaShardAlign = 8;

/// Why this build cannot run stage 07 on CUDA ("" when it can): no nvcc, or no NCCL in the CUDA
/// toolkit. (Whether each rank has a GPU is checked when the ranks start NCCL.)
std::string nccl_backend_unavailable_reason();

/// Collective over the MPI job (`comm`): this rank's executor for the CUDA backend. Every rank
/// takes the GPU of its local rank and joins one NCCL communicator; rank 0's `options` (stage
/// 04's CudaOptions as make_cuda_engine sets them) are broadcast and used by every rank (the
/// others' are ignored); each rank plans its device memory for its shard, and the KV pool is the
/// smallest that fits on every rank (*num_blocks, on every rank). `plan` must come from
/// plan_shards(..., kCudaShardAlign). Throws llm::Error for a shard the CUDA kernels cannot run
/// (naming the rank and the width), a node with fewer GPUs than ranks, any CUDA or NCCL failure.
std::unique_ptr<TpStepExecutor> make_nccl_executor(const ModelWeights& w, const ShardPlan& plan, TpComm comm,
                                                   const stage04::CudaOptions& options, int* num_blocks);

}  // namespace llm::stage07
