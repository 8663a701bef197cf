// backend_none.cpp: the CUDA backend's entry points in a build without nvcc.
#include "backend.h"
#include "common/error.h"

namespace llm::stage04 {

std::string cuda_unavailable_reason() { return "this build has no CUDA backend (CMake found no nvcc)"; }

std::unique_ptr<stage03::StepExecutor> make_cuda_executor(const ModelWeights&, const CudaOptions&, int*) {
  throw Error("--backend cuda: " + cuda_unavailable_reason());
}

std::string cuda_device_name() { return ""; }

bool cuda_step_counts(const stage03::StepExecutor&, long long*, long long*, long long*) { return false; }

}  // namespace llm::stage04
