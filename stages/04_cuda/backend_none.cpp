// backend_none.cpp: the CUDA backend's entry points in a build without nvcc.
#include "backend.h"
#include "common/error.h"
#include "cpu_ops.h"

namespace llm::stage04 {

std::string cuda_unavailable_reason() { return "this build has no CUDA backend (CMake found no nvcc)"; }

std::unique_ptr<stage03::StepExecutor> make_cuda_executor(const ModelWeights&, const CudaOptions&, int*) {
  throw Error("--backend cuda: " + cuda_unavailable_reason());
}

std::string cuda_device_name() { return ""; }

bool cuda_step_counts(const stage03::StepExecutor&, long long*, long long*, long long*) { return false; }

std::vector<OpTime> profile_step_on(stage03::StepExecutor& exec, const stage03::StepBatch& step) {
  if (auto* cpu = dynamic_cast<CpuStepExecutor*>(&exec)) return cpu->profile(step);
  throw Error("profile_step_on: not a stage 04 executor");
}

}  // namespace llm::stage04
