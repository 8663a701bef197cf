#include "tp_executor.h"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "common/error.h"
#include "shard_weights.h"
#include "step_message.h"

namespace llm::stage07 {

TpStepExecutor::TpStepExecutor(const ModelWeights& w, const ShardPlan& plan, TpComm comm, const ShardFormats& formats)
    : full_(w.config), comm_(std::move(comm)) {
  if (plan.ranks != comm_.ranks)
    throw Error("tensor parallel: a plan for " + std::to_string(plan.ranks) + " ranks on " +
                std::to_string(comm_.ranks) + " ranks");
  const RankShard& mine = plan.shards[static_cast<std::size_t>(comm_.rank)];
  const ModelWeights shard = shard_weights(w, mine);
  ShardMatrices m = make_shard_matrices(shard, formats);
  ShardMatrices cls = make_shard_matrices(shard_classifier(w, mine), formats);
  // The shard's bytes count a whole classifier (it is stored tied to the whole embedding); a rank
  // reads its rows of it instead. Bytes scale with rows (whole rows in every format); the output
  // norm (dim fp32) is in both counts.
  const double norm = 4.0 * w.config.dim, cls_rows = cls.bytes_per_step - norm;
  bytes_per_step_ = m.bytes_per_step - cls_rows * w.config.vocab_size / mine.vocab + cls_rows;
  std::vector<int> vocab_counts;
  for (const RankShard& s : plan.shards) vocab_counts.push_back(s.vocab);
  auto matrices = std::make_unique<TpMatrices>(std::move(m.matrices), std::move(cls.matrices), w.config.dim, comm_.rank,
                                               vocab_counts, comm_.all_reduce, comm_.gather, comm_.clock);
  matrices_ = matrices.get();
  if (comm_.barrier) matrices_->set_barrier(comm_.barrier);
  auto ops = std::make_unique<stage04::CpuOps>(shard, std::move(matrices), shard_kv_storage(formats),
                                               formats.fp16_activations);
  local_ = std::make_unique<stage04::CpuStepExecutor>(shard.config, std::move(ops), bytes_per_step_);
  read_fault();
}

TpStepExecutor::TpStepExecutor(const ModelConfig& full, TpComm comm, std::unique_ptr<stage03::StepExecutor> local,
                               double bytes_per_step)
    : full_(full), comm_(std::move(comm)), local_(std::move(local)), bytes_per_step_(bytes_per_step) {
  if (!local_) throw Error("tensor parallel: a rank without an executor");
  read_fault();
  stop_when_destroyed_ = comm_.rank == 0 && comm_.ranks > 1;
}

void TpStepExecutor::read_fault() {
  // The failure test's fault: this rank leaves mid-run, as a crash would.
  const char* er = std::getenv("LLM_TP_EXIT_RANK");
  const char* es = std::getenv("LLM_TP_EXIT_STEP");
  if (er && es && std::atoi(er) == comm_.rank) exit_at_step_ = std::atol(es);
}

TpStepExecutor::~TpStepExecutor() {
  // The CUDA backend's rank 0: the other ranks leave serve() and destroy their NCCL communicators
  // while local_ destroys this one (ncclCommDestroy waits for every rank of the node; were kStop
  // sent after this, as the executable sends it after the engine is gone, both sides would wait
  // for ever).
  if (stop_when_destroyed_ && !stopped_) {
    try {
      stop();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "[07_tensor_parallel] rank 0: could not tell the other ranks to stop: %s\n", e.what());
    }
  }
  if (comm_.rank != 0 || steps_ == 0) return;
  if (!matrices_) {
    std::fprintf(stderr, "[07_tensor_parallel] rank 0 of %d: %ld steps, forward %.3f s (all-reduces on the device, not timed apart)\n",
                 comm_.ranks, steps_, forward_seconds_);
    return;
  }
  const CommTime& c = comm_time();
  std::fprintf(stderr,
               "[07_tensor_parallel] rank 0 of %d: %ld steps, forward %.3f s, of which all-reduce %.3f s (%ld calls, "
               "%.1f us each) = %.1f%%\n",
               comm_.ranks, steps_, forward_seconds_, c.seconds, c.calls,
               c.calls ? 1e6 * c.seconds / static_cast<double>(c.calls) : 0.0,
               forward_seconds_ > 0 ? 100.0 * c.seconds / forward_seconds_ : 0.0);
  if (c.gathers > 0)
    std::fprintf(stderr, "[07_tensor_parallel] rank 0: logits gathered %ld times, %.3f s (%.1f us each)\n", c.gathers,
                 c.gather_seconds, 1e6 * c.gather_seconds / static_cast<double>(c.gathers));
  if (!comm_.barrier) return;
  std::fprintf(stderr,
               "[07_tensor_parallel] rank 0: waiting for the other ranks (barrier) %.3f s, %.1f us per all-reduce\n",
               c.wait_seconds, c.calls ? 1e6 * c.wait_seconds / static_cast<double>(c.calls) : 0.0);
  // By tokens per step (scripts/bench_tp reads these lines).
  for (const auto& [rows, p] : c.by_rows)
    std::fprintf(stderr,
                 "[07_tensor_parallel] rank 0: all-reduce of %d rows (%zu bytes): %ld calls, %.1f us each after "
                 "a barrier of %.1f us\n",
                 rows, static_cast<std::size_t>(rows) * static_cast<std::size_t>(full_.dim) * sizeof(float), p.calls,
                 1e6 * p.seconds / static_cast<double>(p.calls), 1e6 * p.wait_seconds / static_cast<double>(p.calls));
}

void TpStepExecutor::begin_run(stage03::BlockPool& pool) {
  if (comm_.rank == 0) {
    std::vector<int> m = {kBeginRun, pool.num_blocks(), pool.block_size()};
    comm_.broadcast(m);
  }
  local_->begin_run(pool);
}

std::vector<float> TpStepExecutor::run_local(const stage03::StepBatch& step) {
  if (steps_ == exit_at_step_) {
    std::fprintf(stderr, "rank %d: leaving at step %ld (LLM_TP_EXIT_STEP)\n", comm_.rank, steps_);
    std::_Exit(1);
  }
  const double t0 = comm_.clock();
  std::vector<float> logits = local_->forward(step);
  forward_seconds_ += comm_.clock() - t0;
  ++steps_;
  return logits;
}

std::vector<float> TpStepExecutor::forward(const stage03::StepBatch& step) {
  if (comm_.rank == 0) {
    std::vector<int> m = encode_step(step);
    comm_.broadcast(m);
  }
  return run_local(step);
}

void TpStepExecutor::serve() {
  for (;;) {
    std::vector<int> m;
    comm_.broadcast(m);
    if (m.empty()) throw Error("tensor parallel: an empty message from rank 0");
    switch (m[0]) {
      case kStop:
        return;
      case kBeginRun:
        if (m.size() != 3) throw Error("tensor parallel: a begin-run message of " + std::to_string(m.size()) + " ints");
        worker_pool_ = std::make_unique<stage03::BlockPool>(full_, m[1], m[2], false, local_->kv_element_bytes(),
                                                            local_->kv_scale_bytes());
        local_->begin_run(*worker_pool_);
        break;
      case kStep: {
        const DecodedStep d = decode_step(m);
        (void)run_local(d.batch());
        break;
      }
      default:
        throw Error("tensor parallel: message kind " + std::to_string(m[0]) + " from rank 0");
    }
  }
}

void TpStepExecutor::stop() {
  if (stopped_) return;
  stopped_ = true;
  std::vector<int> m = {kStop};
  comm_.broadcast(m);
}

}  // namespace llm::stage07
