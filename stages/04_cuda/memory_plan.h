// memory_plan.h: how much of the GPU the KV pool gets. The weights come first, then the
// activations of the largest step; what is left of the allowed share of free memory becomes KV
// blocks, and every block is one more sequence-slice that can run at once. A model that does
// not fit is refused with the sizes, before anything is allocated. A block's bytes depend on how
// the cache stores K and V (kv_block_bytes): an int8 or FP8 block (stage 05's --kv-cache) is about
// half an fp16 one, so the same bytes hold about twice the tokens.
#pragma once

#include <cstddef>
#include <string>

#include "common/model_config.h"
#include "kernels/cpu/attention.h"  // KvCodeType

namespace llm::stage04 {

/// The split of device memory, in bytes.
struct MemoryPlan {
  std::size_t budget = 0;     ///< fraction x free memory
  std::size_t weights = 0;
  std::size_t workspace = 0;  ///< activations of the largest step, graphs, cuBLAS
  std::size_t kv_pool = 0;
  int num_blocks = 0;
};

/// Bytes of one KV block of `block_size` tokens of a model of shape `c` with K and V stored as
/// `type`: 2 (K, V) x n_layers x block_size x (kv_dim x code bytes + n_kv_heads x scale bytes),
/// the scale being one fp32 per (token, KV head) for int8 / fp8_e4m3 and none for f32 / f16. The
/// pool's books (stage 03's BlockPool::bytes_per_block) count the same. Throws llm::Error on overflow.
std::size_t kv_block_bytes(const ModelConfig& c, cpu::KvCodeType type, int block_size);

/// Plans the pool: num_blocks = (fraction * free - weights - workspace) / bytes_per_block, at
/// most max_useful_blocks (0 = no cap). Throws llm::Error naming every figure when not even one
/// block fits (`device` names the card in the message).
MemoryPlan plan_memory(std::size_t free_bytes, double fraction, std::size_t weight_bytes, std::size_t workspace_bytes,
                       std::size_t bytes_per_block, int max_useful_blocks, const std::string& device);

}  // namespace llm::stage04
