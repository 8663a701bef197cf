#include "memory_plan.h"

#include <algorithm>
#include <cstdio>

#include "common/checked.h"
#include "common/error.h"

namespace llm::stage04 {

namespace {

std::string gib(std::size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

}  // namespace

std::size_t kv_block_bytes(const ModelConfig& c, cpu::KvCodeType type, int block_size) {
  const std::string what = "KV pool block of --block-size " + std::to_string(block_size);
  if (block_size < 1) throw Error(what + ": must be at least 1");
  const std::size_t scale = cpu::kv_code_has_scale(type) ? sizeof(float) : 0;
  const std::size_t per_token_layer =
      static_cast<std::size_t>(c.kv_dim()) * cpu::kv_code_bytes(type) + static_cast<std::size_t>(c.n_kv_heads) * scale;
  return checked_mul(checked_mul(2 * static_cast<std::size_t>(c.n_layers), static_cast<std::size_t>(block_size), what),
                     per_token_layer, what);
}

MemoryPlan plan_memory(std::size_t free_bytes, double fraction, std::size_t weight_bytes, std::size_t workspace_bytes,
                       std::size_t bytes_per_block, int max_useful_blocks, const std::string& device) {
  if (!(fraction > 0.0 && fraction <= 1.0))
    throw Error("--kv-memory-fraction " + std::to_string(fraction) + ": must be in (0, 1]");
  if (bytes_per_block == 0) throw Error("memory plan: a KV block of 0 bytes");
  MemoryPlan p;
  p.weights = weight_bytes;
  p.workspace = workspace_bytes;
  // BEGIN EXERCISE(pool-sizing): the blocks that fit in what the weights and activations leave
  p.budget = static_cast<std::size_t>(fraction * static_cast<double>(free_bytes));
  const std::size_t taken = checked_add(weight_bytes, workspace_bytes, "memory plan: weights + activations");
  const std::size_t left = p.budget > taken ? p.budget - taken : 0;
  long blocks = static_cast<long>(left / bytes_per_block);
  if (max_useful_blocks > 0) blocks = std::min(blocks, static_cast<long>(max_useful_blocks));
  p.num_blocks = static_cast<int>(std::min(blocks, 1L << 30));
  p.kv_pool = checked_mul(static_cast<std::size_t>(p.num_blocks), bytes_per_block, "memory plan: KV pool bytes");
  // END EXERCISE
  if (p.num_blocks < 1)
    throw Error("the model does not fit on " + device + ": weights " + gib(weight_bytes) + " + activations " +
                gib(workspace_bytes) + " + one KV block " + gib(bytes_per_block) + " > " + std::to_string(fraction) +
                " x " + gib(free_bytes) +
                " free (--kv-memory-fraction; the activations grow with --token-budget and --batch)");
  return p;
}

}  // namespace llm::stage04
