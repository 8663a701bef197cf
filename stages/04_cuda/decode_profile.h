// decode_profile.h: where the time of a decode step goes. Fills `batch` sequences with `context`
// tokens of cache (one prefill step each), then runs one decode step of all of them with
// profile_step (step_recipe.h): seconds per operation, summed over the layers. Works on either
// backend's executor; stage04_synthetic prints it for Llama-3-8B on the GPU.
#pragma once

#include <vector>

#include "backend.h"
#include "common/model_config.h"

namespace llm::stage04 {

/// The per-operation times of one decode step at this batch and context. `exec` must hold at
/// least batch * ceil((context + 1) / block_size) blocks' worth of cache (its num_blocks).
std::vector<OpTime> profile_decode_step(stage03::StepExecutor& exec, const ModelConfig& c, int batch, int context,
                                        int block_size, int num_blocks);

}  // namespace llm::stage04
