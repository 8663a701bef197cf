// nccl_executor_none.cpp: nccl_executor.h in a build without nvcc or without the toolkit's NCCL.
#include "common/error.h"
#include "nccl_executor.h"

namespace llm::stage07 {

std::string nccl_backend_unavailable_reason() { return LLM_STAGE07_NO_NCCL_REASON; }

std::unique_ptr<TpStepExecutor> make_nccl_executor(const ModelWeights&, const ShardPlan&, TpComm,
                                                   const stage04::CudaOptions&, int*) {
  throw Error("--backend cuda: " + nccl_backend_unavailable_reason());
}

}  // namespace llm::stage07
