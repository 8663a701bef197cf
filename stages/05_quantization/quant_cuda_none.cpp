// quant_cuda_none.cpp: stage 05's CUDA entry point in a build without nvcc.
#include "common/error.h"
#include "quant_cuda.h"

namespace llm::stage05 {

std::string cuda_device_refusal(const QuantWeights&) {
  return "";
}

std::unique_ptr<stage03::StepExecutor> make_quant_cuda_executor(const ModelWeights&, const QuantWeights&,
                                                                const stage04::CudaOptions&, int*) {
  throw Error("--backend cuda: " + stage04::cuda_unavailable_reason());
}

}  // namespace llm::stage05
