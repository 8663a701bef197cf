// Stage 07: tensor parallelism. `mpirun -np N stage07_tensor_parallel --model ...` runs one
// process per rank; rank 0 runs stage 03's engine and prints, the others serve its steps on their
// shards. Without mpirun it is rank 0 of 1. --backend cuda: one GPU per rank, the all-reduces by
// NCCL (nccl_executor.h; built, not yet run on a GPU). See README.md in this folder.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <iostream>
#include <thread>

#include "common/error.h"
#include "common/stage_main.h"
#include "mpi_comm.h"
#include "nccl_executor.h"
#include "stages/05_quantization/quant_engine.h"
#include "shard_plan.h"
#include "stages/03_continuous_batching/continuous_batch_engine.h"
#include "stages/04_cuda/gpu_engine.h"
#include "stages/04_cuda/packed_weights.h"
#include "step_message.h"
#include "tp_executor.h"

namespace {

llm::stage07::TpComm mpi_comm(const llm::stage07::MpiSession& mpi) {
  llm::stage07::TpComm c{mpi.rank(),
                         mpi.size(),
                         llm::stage07::all_reduce_sum,
                         llm::stage07::broadcast_ints,
                         llm::stage07::wall_seconds,
                         {},
                         llm::stage07::gather_floats};
  // LLM_TP_SPLIT_WAIT=1 (every rank: mpirun passes the environment): time the wait apart.
  const char* split = std::getenv("LLM_TP_SPLIT_WAIT");
  if (split && std::string(split) == "1") c.barrier = llm::stage07::barrier;
  return c;
}

/// Refuses --backend cuda where it cannot run, before the other ranks load anything.
void check_cuda_backend(const llm::stage07::ShardFormats& f) {
  if ((f.weights != "auto" && f.weights != "f16") || f.matmul != "auto" || f.kv_cache != "f16")
    throw llm::Error("--backend cuda: stage 07 runs stage 04's fp16 weights and K/V on the GPU; --weights " + f.weights +
                     ", --matmul " + f.matmul + ", --kv-cache " + f.kv_cache + " are the CPU backend's");
  std::string why = llm::stage07::nccl_backend_unavailable_reason();
  if (why.empty()) why = llm::stage04::cuda_unavailable_reason();
  if (!why.empty()) throw llm::Error("--backend cuda: " + why);
}

/// Rank 0 on the CUDA backend: stage 04's CUDA engine settings (make_cuda_engine) on this rank's
/// executor; the pool is what fits on every rank.
std::unique_ptr<llm::Engine> cuda_engine(const llm::Model& model, const llm::CliOptions& o,
                                         const llm::stage07::ShardPlan& plan, const llm::stage07::MpiSession& mpi) {
  std::size_t bytes = 0;
  llm::stage04::GpuEngine built = llm::stage04::make_cuda_engine(
      model.weights, model.tokenizer->stop_ids(), llm::stage04::gpu_engine_config(o),
      [&](const llm::stage04::CudaOptions& options, int* fits) -> std::unique_ptr<llm::stage03::StepExecutor> {
        auto exec = llm::stage07::make_nccl_executor(model.weights, plan, mpi_comm(mpi), options, fits);
        bytes = static_cast<std::size_t>(exec->weight_bytes_per_step());
        return exec;
      });
  std::cerr << "stage 07 backend: cuda (" << built.note << ", " << mpi.size() << " rank(s), one GPU each, NCCL)\n";
  return std::make_unique<llm::stage05::QuantEngine>(std::move(built.engine),
                                                     "fp16, rank 0's shard of " + std::to_string(mpi.size()), bytes);
}

/// The ranks on this machine share its cores: unless LLM_THREADS or OMP_NUM_THREADS says
/// otherwise, each runs cores / ranks kernel threads (at least 1), so that N ranks do not start
/// N x cores threads (kernels/cpu/parallel.h counts the cores a process may run on, all of them
/// under `mpirun --bind-to none`). Before the first kernel runs: the pool reads it once.
void default_threads(const llm::stage07::MpiSession& mpi) {
  if (mpi.size() < 2 || std::getenv("LLM_THREADS") || std::getenv("OMP_NUM_THREADS")) return;
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");  // ranks on this node (mpirun sets it)
  const int ranks = local && std::atoi(local) > 0 ? std::atoi(local) : mpi.size();
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  setenv("LLM_THREADS", std::to_string(std::max(1, cores / ranks)).c_str(), 0);
}

/// Ranks > 0: wait for rank 0's model, then serve its steps. Quiet unless something fails.
int serve(const llm::stage07::MpiSession& mpi) {
  using namespace llm::stage07;
  std::vector<int> m;
  broadcast_ints(m);
  if (m.empty() || m[0] == kStop) return 0;  // rank 0 stopped before loading (--help, a bad flag)
  if (m[0] != kLoad) throw llm::Error("tensor parallel: expected the model's path from rank 0");
  const std::vector<std::string> s = decode_load(m);
  if (s.size() != 6) throw llm::Error("tensor parallel: a load message of " + std::to_string(s.size()) + " strings");
  const ShardFormats formats{s[2], s[3], s[4]};
  const llm::Model model = llm::load_model(s[0], s[1]);
  if (s[5] == "cuda") {  // rank 0's options come with the executor (make_nccl_executor broadcasts them)
    make_nccl_executor(model.weights, plan_shards(model.config(), mpi.size(), kCudaShardAlign), mpi_comm(mpi), {}, nullptr)
        ->serve();
    return 0;
  }
  TpStepExecutor exec(model.weights, plan_shards(model.config(), mpi.size(), shard_alignment(formats, mpi.size())),
                      mpi_comm(mpi), formats);
  exec.serve();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    llm::stage07::MpiSession mpi(&argc, &argv);
    default_threads(mpi);
    if (mpi.rank() != 0) {
      try {
        return serve(mpi);
      } catch (const llm::NotImplemented&) {
        // A student tree's blank exercise: rank 0 meets the same one and says so; exit 3 as it does.
        llm::stage07::MpiSession::abort_all(3);
      } catch (const std::exception& e) {
        // Rank 0 waits in a collective for this rank: end the whole job.
        std::fprintf(stderr, "rank %d: error: %s\n", mpi.rank(), e.what());
        llm::stage07::MpiSession::abort_all(1);
      }
    }
    llm::StageInfo stage{"07_tensor_parallel",
                         "tensor parallelism: stage 04's CPU step split over MPI ranks (Megatron-LM), "
                         "stage 03's scheduler on rank 0",
                         16};
    stage.paged_kv = true;
    stage.quantization = true;  // --weights (auto = stage 04's fp16), --matmul, --kv-cache
    stage.device_backend = true;  // --backend cpu|cuda (auto = cpu), --kv-memory-fraction, --no-cuda-graphs
    stage.weight_storage = "fp16";
    stage.weight_storage_bytes = [](const llm::ModelWeights& w) {
      return llm::stage04::packed_weight_bytes(w.config, w.output.empty());
    };
    bool others_loaded = false;  // the other ranks left the wait for the model: they run steps now
    // The CUDA backend's engine was built: its executor sends the other ranks kStop when it goes,
    // before its NCCL communicator is destroyed (tp_executor.h), so it is not sent again here.
    bool executor_stops_others = false;
    const int rc = llm::stage_main(argc, argv, stage, [&](const llm::Model& model, const llm::CliOptions& o) -> std::unique_ptr<llm::Engine> {
      using namespace llm::stage07;
      // Refused here, before the other ranks load anything.
      const ShardFormats formats{o.weights, o.matmul, o.kv_cache};
      // auto stays on the CPU: the CUDA backend has not yet run on a GPU (README, "NCCL").
      const bool cuda = o.backend == "cuda";
      if (cuda) check_cuda_backend(formats);
      const ShardPlan plan =
          plan_shards(model.config(), mpi.size(), cuda ? kCudaShardAlign : shard_alignment(formats, mpi.size()));
      std::vector<int> load =
          encode_load({model.path, o.tokenizer, o.weights, o.matmul, o.kv_cache, cuda ? "cuda" : "cpu"});
      broadcast_ints(load);
      others_loaded = true;
      std::cerr << "[07_tensor_parallel] " << mpi.size() << " rank(s):\n" << plan.describe();
      if (cuda) {
        auto engine = cuda_engine(model, o, plan, mpi);
        executor_stops_others = true;
        return engine;
      }
      auto executor = std::make_unique<TpStepExecutor>(model.weights, plan, mpi_comm(mpi), formats);
      // The metrics name what rank 0 holds: its shard in --weights' format, and the bytes it reads a step.
      const auto bytes = static_cast<std::size_t>(executor->weight_bytes_per_step());
      const std::string storage = (o.weights == "auto" ? std::string("fp16") : o.weights) + ", rank 0's shard of " +
                                  std::to_string(mpi.size());
      auto engine = std::make_unique<llm::stage03::ContinuousBatchEngine>(
          model.weights, model.tokenizer->stop_ids(), llm::stage03::continuous_batch_config(o), std::move(executor));
      return std::make_unique<llm::stage05::QuantEngine>(std::move(engine), storage, bytes);
    });
    // After an error the other ranks may be inside a step's all-reduce, where a stop message
    // would not match what they wait for: end them (MPI_Abort) instead.
    if (rc != 0 && others_loaded && mpi.size() > 1) llm::stage07::MpiSession::abort_all(rc);
    if (!executor_stops_others) {
      std::vector<int> stop = {llm::stage07::kStop};
      llm::stage07::broadcast_ints(stop);
    }
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
