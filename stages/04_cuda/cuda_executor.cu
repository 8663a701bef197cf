// cuda_executor.cu: stage 04's CUDA backend as a stage03::StepExecutor, plus the entry points of
// backend.h. Stage 03's engine and scheduler stay on the host and decide each step; this file
// lays the step out for the device (step_layout.h) and runs it with CudaOps (cuda_ops.cuh).
//
// Sizing the device. Before a byte is allocated, make_cuda_executor asks the device how much
// memory is free and plans it (memory_plan.h): the weights first, then the activations of the
// largest step, then as many KV blocks as fit the rest. A model that does not fit is refused
// with the figures instead of failing half-way through an upload.
//
// Launch overhead and CUDA graphs. A decode step of a Llama model is about 10 kernels per layer:
// 300+ launches for 32 layers. Each launch costs the host a few microseconds, and at decode the
// kernels are short (a small model's GEMV reads its weights in a few microseconds), so the GPU
// can spend much of the step waiting for the host to queue the next kernel. A CUDA graph records
// the launches of a whole step once (stream capture) and replays them with one call; the GPU then
// runs them back to back. A graph bakes in every pointer and argument, so:
//   - the step's metadata lives at fixed device addresses (CudaOps uploads it before each replay);
//   - the decode attention is captured with bounds that hold for every later step: the longest
//     possible sequence as its max_seq_len and a split count fixed for that bound, so the same
//     graph serves the step as sequences grow (splits past a sequence's end are empty, and the
//     split-KV kernel's merge skips them);
//   - one graph per (batch size, logit rows): the grid sizes depend on them.
// Only decode-only steps are captured: a prefill step's shapes (chunk lengths, prefix lengths)
// change every time, and it is long enough that launches do not matter. A captured step must not
// use cuBLAS either: cuBLAS may allocate its workspace on first use, which a capture cannot
// record, and CublasGemm does not let us hand it one. So graphs are used for decode steps of at
// most kGemvMaxRows = 8 rows (every matmul a GEMV); with --batch above 8, decode steps of more
// than 8 sequences run eagerly, kernel by kernel (they are also the steps where launch overhead
// matters least: more work per kernel).
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "backend.h"
#include "common/error.h"
#include "cpu_ops.h"
#include "cuda_executor.cuh"
#include "cuda_ops.cuh"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/device.h"
#include "memory_plan.h"
#include "packed_weights.h"
#include "step_layout.h"
#include "step_recipe.h"

namespace llm::stage04 {

namespace {

/// Seed of the synthetic weights (fixed: two runs of a synthetic model compute the same thing).
constexpr std::uint64_t kSyntheticSeed = 0x5EED5EED5EED5EEDull;
/// Device memory kept out of the KV pool besides CudaOps' own buffers: cuBLAS' handle and
/// workspace, and the instantiated graphs (a few hundred nodes each, at most 8 x 9 of them).
constexpr std::size_t kCublasReserve = 64ull << 20;
constexpr std::size_t kGraphReserve = 64ull << 20;

}  // namespace

/// The CUDA backend of stage 04: runs each step with CudaOps, decode steps of up to 8 rows from
/// captured CUDA graphs (see the top of this file), every other step eagerly.
class CudaStepExecutor final : public stage03::StepExecutor {
 public:
  CudaStepExecutor(std::unique_ptr<CudaOps> ops, const CudaOptions& options, double bytes_per_step)
      : ops_(std::move(ops)), options_(options), bytes_per_step_(bytes_per_step) {}
  ~CudaStepExecutor() override { drop_graphs(); }
  CudaStepExecutor(const CudaStepExecutor&) = delete;
  CudaStepExecutor& operator=(const CudaStepExecutor&) = delete;

  bool uses_pool_storage() const override { return false; }
  std::size_t kv_element_bytes() const override { return cpu::kv_code_bytes(ops_->kv_cache()); }
  std::size_t kv_scale_bytes() const override { return cpu::kv_code_has_scale(ops_->kv_cache()) ? sizeof(float) : 0; }
  double weight_bytes_per_step() const override { return bytes_per_step_; }

  void begin_run(stage03::BlockPool& pool) override {
    // Same pool size: the cache, the buffers and the graphs that point into them stay.
    if (ops_->reserve_cache(pool.num_blocks(), pool.block_size())) drop_graphs();
    block_size_ = pool.block_size();
  }

  std::vector<float> forward(const stage03::StepBatch& step) override {
    if (block_size_ == 0) throw Error("CudaStepExecutor: forward before begin_run");
    const ModelConfig& c = ops_->config();
    for (const int p : step.positions)
      if (p < 0 || p >= c.context_length)
        throw Error("forward: position " + std::to_string(p) + " is outside the context of " +
                    std::to_string(c.context_length));
    const StepLayout L = layout_step(step, block_size_);
    if (L.n == 0) return {};
    const int rows = static_cast<int>(L.logit_rows.size());
    const bool decode_only = L.chunks.empty() && L.n_decode == L.n;
    if (options_.cuda_graphs && graphs_ok_ && decode_only && L.n <= options_.max_running && ops_->graph_capable(L.n, rows))
      return run_graph(L, rows);
    ++eager_steps_;
    return run_step(*ops_, L, c.n_layers);
  }

  /// Runs the step eagerly with profile_step: seconds per operation of the recipe.
  std::vector<OpTime> profile(const stage03::StepBatch& step) {
    if (block_size_ == 0) throw Error("CudaStepExecutor: profile before begin_run");
    return profile_step(*ops_, layout_step(step, block_size_), ops_->config().n_layers);
  }

  /// Graph launches so far (a replay per graph step, the first launch after a capture included).
  long long graph_launches() const { return graph_launches_; }
  /// Graphs captured so far (one per (batch size, logit rows) seen, again after a pool change).
  long long graph_captures() const { return graph_captures_; }
  /// Steps run kernel by kernel (prefill and mixed steps, large decode batches, graphs off).
  long long eager_steps() const { return eager_steps_; }
  /// Why graphs were switched off ("" while they are on or were never tried).
  const std::string& graphs_disabled_reason() const { return graphs_disabled_; }

 private:
  using Key = std::pair<int, int>;  // (rows, logit rows)

  std::vector<float> run_graph(const StepLayout& L, int rows) {
    ops_->upload_for_graph(L);  // outside the graph: the replay reads it from the fixed buffers
    const Key key{L.n, rows};
    auto it = graphs_.find(key);
    if (it == graphs_.end()) {
      cudaGraphExec_t exec = nullptr;
      try {
        exec = capture(L);
      } catch (const std::exception& e) {
        // Fall back to eager steps for the rest of the run. If the failure is the step's own (a
        // kernel refusing its arguments), the eager run below throws it again.
        graphs_ok_ = false;
        graphs_disabled_ = e.what();
        std::fprintf(stderr, "warning: stage 04 cuda: CUDA graph capture failed, running steps eagerly: %s\n", e.what());
        ++eager_steps_;
        return run_step(*ops_, L, ops_->config().n_layers);
      }
      it = graphs_.emplace(key, exec).first;
      ++graph_captures_;
    }
    CUDA_CHECK(cudaGraphLaunch(it->second, ops_->stream()));
    ++graph_launches_;
    return ops_->download_logits(rows);  // after the replay, on the same stream
  }

  /// Records run_step's launches (everything between the metadata upload and the logits
  /// download) into a graph and instantiates it. Nothing runs during the capture.
  cudaGraphExec_t capture(const StepLayout& L) {
    const cudaStream_t s = ops_->stream();
    cudaGraph_t graph = nullptr;
    // Thread-local mode: an API call of this thread that a capture cannot record (a cudaMalloc, a
    // synchronous copy) fails the capture instead of silently running outside the graph.
    CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    ops_->set_graph_body(true);
    try {
      (void)run_step(*ops_, L, ops_->config().n_layers);
    } catch (...) {
      ops_->set_graph_body(false);
      (void)cudaStreamEndCapture(s, &graph);  // leave capture mode whatever happened
      if (graph) (void)cudaGraphDestroy(graph);
      (void)cudaGetLastError();
      throw;
    }
    ops_->set_graph_body(false);
    const cudaError_t ended = cudaStreamEndCapture(s, &graph);
    if (ended != cudaSuccess || graph == nullptr) {
      if (graph) (void)cudaGraphDestroy(graph);
      (void)cudaGetLastError();
      throw std::runtime_error(std::string("cudaStreamEndCapture: ") + cudaGetErrorString(ended));
    }
    cudaGraphExec_t exec = nullptr;
    const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
    (void)cudaGraphDestroy(graph);  // the executable graph is independent of it
    if (made != cudaSuccess) {
      (void)cudaGetLastError();
      throw std::runtime_error(std::string("cudaGraphInstantiate: ") + cudaGetErrorString(made));
    }
    return exec;
  }

  void drop_graphs() {
    for (auto& [key, exec] : graphs_) (void)cudaGraphExecDestroy(exec);
    graphs_.clear();
  }

  std::unique_ptr<CudaOps> ops_;
  CudaOptions options_;
  double bytes_per_step_ = 0.0;
  int block_size_ = 0;
  std::map<Key, cudaGraphExec_t> graphs_;
  bool graphs_ok_ = true;
  std::string graphs_disabled_;
  long long graph_launches_ = 0, graph_captures_ = 0, eager_steps_ = 0;
};

std::string cuda_unavailable_reason() {
  if (llm::cuda::device_count() == 0) return "no CUDA device found";
  // A device that is listed but cannot be used (all busy in an exclusive compute mode, say) fails
  // here, when its context is created, instead of at the first allocation of an engine: --backend
  // auto then runs the CPU backend, and the GPU tests say why they skip.
  const cudaError_t made = cudaFree(nullptr);
  if (made != cudaSuccess) {
    (void)cudaGetLastError();
    return std::string("the CUDA device cannot be used: ") + cudaGetErrorString(made);
  }
  return "";
}

std::string cuda_device_name() { return llm::cuda::device_name(); }

std::unique_ptr<stage03::StepExecutor> make_cuda_executor(const ModelConfig& c, const CudaWeightPlan& weights,
                                                          const CudaOptions& options, int* num_blocks) {
  const std::string why_not = cuda_unavailable_reason();
  if (!why_not.empty()) throw Error("--backend cuda: " + why_not);
  if (options.block_size < 1) throw Error("--block-size " + std::to_string(options.block_size) + ": must be at least 1");
  if (options.kv_cache == cpu::KvCodeType::f32)
    throw Error("--kv-cache f32: the CUDA backend keeps the K/V cache in f16, int8 or fp8");
  const CudaOpsLimits limits{options.token_budget, options.max_running, options.kv_cache};

  // Plan before allocating anything: what is free now, minus weights and workspace, in blocks.
  std::size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  const std::size_t workspace =
      CudaOps::workspace_bytes(c, limits, options.block_size, options.max_useful_blocks) + kCublasReserve + kGraphReserve;
  // A block in the cache's own format: int8/fp8 blocks are about half fp16's, so about twice as
  // many fit the same bytes.
  const std::size_t bytes_per_block = kv_block_bytes(c, options.kv_cache, options.block_size);
  const MemoryPlan plan = plan_memory(free_bytes, options.memory_fraction, weights.device_bytes, workspace,
                                      bytes_per_block, options.max_useful_blocks, cuda_device_name());

  double bytes_per_step = 0.0;
  std::unique_ptr<CudaOps> ops = weights.make_ops(limits, &bytes_per_step);
  if (num_blocks) *num_blocks = plan.num_blocks;
  return std::make_unique<CudaStepExecutor>(std::move(ops), options, bytes_per_step);
}

std::unique_ptr<stage03::StepExecutor> make_cuda_executor(const ModelWeights& weights, const CudaOptions& options,
                                                          int* num_blocks) {
  const ModelConfig& c = weights.config;
  const bool synthetic = weights.layers.empty();
  if (synthetic) c.validate("synthetic model");
  const bool tied = !synthetic && weights.output.empty();
  CudaWeightPlan plan;
  plan.device_bytes = packed_weight_bytes(c, tied);
  plan.make_ops = [&](const CudaOpsLimits& limits, double* bytes_per_step) -> std::unique_ptr<CudaOps> {
    if (synthetic) {
      *bytes_per_step = static_cast<double>(packed_weight_bytes(c, /*tied_embeddings=*/true));  // classifier, not embed
      return std::make_unique<CudaOps>(c, kSyntheticSeed, limits);
    }
    const PackedWeights packed = pack_weights(weights);
    *bytes_per_step = packed.bytes_per_step();
    return std::make_unique<CudaOps>(packed, limits);
  };
  return make_cuda_executor(c, plan, options, num_blocks);
}

bool cuda_step_counts(const stage03::StepExecutor& exec, long long* graph_launches, long long* graph_captures,
                      long long* eager_steps) {
  const auto* e = dynamic_cast<const CudaStepExecutor*>(&exec);
  if (e == nullptr) return false;
  if (graph_launches) *graph_launches = e->graph_launches();
  if (graph_captures) *graph_captures = e->graph_captures();
  if (eager_steps) *eager_steps = e->eager_steps();
  return true;
}

std::vector<OpTime> profile_step_on(stage03::StepExecutor& exec, const stage03::StepBatch& step) {
  if (auto* cpu = dynamic_cast<CpuStepExecutor*>(&exec)) return cpu->profile(step);
  if (auto* gpu = dynamic_cast<CudaStepExecutor*>(&exec)) return gpu->profile(step);
  throw Error("profile_step_on: not a stage 04 executor");
}

}  // namespace llm::stage04
