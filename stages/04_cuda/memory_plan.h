// memory_plan.h: how much of the GPU the KV pool gets. The weights come first, then the
// activations of the largest step; what is left of the allowed share of free memory becomes KV
// blocks, and every block is one more sequence-slice that can run at once. A model that does
// not fit is refused with the sizes, before anything is allocated.
#pragma once

#include <cstddef>
#include <string>

namespace llm::stage04 {

/// The split of device memory, in bytes.
struct MemoryPlan {
  std::size_t budget = 0;     ///< fraction x free memory
  std::size_t weights = 0;
  std::size_t workspace = 0;  ///< activations of the largest step, graphs, cuBLAS
  std::size_t kv_pool = 0;
  int num_blocks = 0;
};

/// Plans the pool: num_blocks = (fraction * free - weights - workspace) / bytes_per_block, at
/// most max_useful_blocks (0 = no cap). Throws llm::Error naming every figure when not even one
/// block fits (`device` names the card in the message).
MemoryPlan plan_memory(std::size_t free_bytes, double fraction, std::size_t weight_bytes, std::size_t workspace_bytes,
                       std::size_t bytes_per_block, int max_useful_blocks, const std::string& device);

}  // namespace llm::stage04
