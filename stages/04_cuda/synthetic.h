// synthetic.h: model shapes for speed measurements without a download. The CUDA backend fills
// the weights with random values on the device (make_cuda_executor with a weights struct that
// has only a config), so a Llama-3-8B-shaped engine needs no file and no host copy.
#pragma once

#include <string>
#include <vector>

#include "common/model_config.h"

namespace llm::stage04 {

/// The configs of the published models: "llama3-8b" (Llama-3-8B), "llama3.2-1b" (Llama-3.2-1B).
/// The context is 32768 so that 16k-token prompts fit. Throws llm::Error for an unknown name,
/// listing the known ones.
ModelConfig synthetic_config(const std::string& name);
std::vector<std::string> synthetic_names();

}  // namespace llm::stage04
