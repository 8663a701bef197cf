#include "step_executor.h"

#include "common/error.h"

namespace llm::stage03 {

void CpuPagedExecutor::begin_run(BlockPool& pool) { pool_ = &pool; }

std::vector<float> CpuPagedExecutor::forward(const StepBatch& step) {
  if (!pool_) throw Error("CpuPagedExecutor: forward before begin_run");
  PagedKvCache cache(*pool_, w_.config);
  cache.set_step(std::vector<StepRows>(step.chunks.begin(), step.chunks.end()));
  return forward_tokens(w_, step.tokens, step.positions, step.logit_rows, cache, scratch_);
}

}  // namespace llm::stage03
