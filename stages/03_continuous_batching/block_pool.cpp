#include "block_pool.h"

#include <algorithm>
#include <string>

#include "common/checked.h"
#include "common/error.h"
#include "common/host_memory.h"

namespace llm::stage03 {

BlockPool::BlockPool(const ModelConfig& config, int num_blocks, int block_size, bool host_storage,
                     std::size_t kv_element_bytes, std::size_t kv_scale_bytes)
    : num_blocks_(num_blocks),
      block_size_(block_size),
      layers_(config.n_layers),
      kv_dim_(config.kv_dim()),
      n_kv_heads_(config.n_kv_heads),
      element_bytes_(kv_element_bytes),
      scale_bytes_(kv_scale_bytes) {
  if (num_blocks < 1) throw Error("--kv-blocks " + std::to_string(num_blocks) + ": the pool needs at least one block");
  if (block_size < 1) throw Error("--block-size " + std::to_string(block_size) + ": must be at least 1");
  // Both counts come from flags: the product is checked, and a pool larger than the machine is
  // refused by name here rather than as a bare out-of-memory later.
  const std::string what =
      "KV pool of --kv-blocks " + std::to_string(num_blocks) + " x --block-size " + std::to_string(block_size);
  const std::size_t floats =
      checked_mul(checked_mul(static_cast<std::size_t>(num_blocks), static_cast<std::size_t>(block_size), what),
                  static_cast<std::size_t>(layers_) * static_cast<std::size_t>(kv_dim_), what);
  const std::size_t bytes = checked_mul(floats, 2 * sizeof(float), what);
  const std::size_t memory = physical_memory_bytes();
  if (host_storage && memory > 0 && bytes > memory) {
    throw Error(what + ": needs " + format_gib(bytes) + " but this machine has " + format_gib(memory) +
                " of memory (lower --kv-blocks or --block-size)");
  }
  if (host_storage) {
    k_.assign(floats, 0.0f);
    v_.assign(floats, 0.0f);
  }
  const auto n = static_cast<std::size_t>(num_blocks);
  refs_.assign(n, 0);
  free_pos_.resize(n);
  is_free_.assign(n, 1);
  published_.resize(n);
  for (int b = 0; b < num_blocks; ++b) free_pos_[static_cast<std::size_t>(b)] = free_.insert(free_.end(), b);
}

std::size_t BlockPool::bytes_per_block() const {
  return 2 * static_cast<std::size_t>(layers_) * static_cast<std::size_t>(block_size_) *
         (static_cast<std::size_t>(kv_dim_) * element_bytes_ + static_cast<std::size_t>(n_kv_heads_) * scale_bytes_);
}

void BlockPool::forget(int block) {
  auto& p = published_[static_cast<std::size_t>(block)];
  if (!p) return;
  const auto it = index_.find(p->hash);
  if (it != index_.end() && it->second == block) index_.erase(it);
  p.reset();
}

int BlockPool::allocate() {
  if (free_.empty()) throw Error("KV pool: no free block (all " + std::to_string(num_blocks_) + " in use)");
  const int b = free_.front();
  free_.pop_front();
  const auto i = static_cast<std::size_t>(b);
  is_free_[i] = 0;
  refs_[i] = 1;
  forget(b);  // its old K/V will be overwritten: it no longer holds that prefix
  return b;
}

void BlockPool::retain(int block) {
  const auto i = static_cast<std::size_t>(block);
  if (is_free_.at(i)) {
    free_.erase(free_pos_[i]);
    is_free_[i] = 0;
  }
  ++refs_[i];
}

void BlockPool::release(int block) {
  const auto i = static_cast<std::size_t>(block);
  if (refs_.at(i) <= 0) throw Error("KV pool: block " + std::to_string(block) + " released more often than taken");
  if (--refs_[i] == 0) {
    free_pos_[i] = free_.insert(free_.end(), block);
    is_free_[i] = 1;
  }
}

void BlockPool::publish(int block, std::uint64_t hash, std::uint64_t parent_hash, std::span<const int> tokens) {
  if (index_.count(hash)) return;  // the same prefix is already cached in another block
  forget(block);
  published_[static_cast<std::size_t>(block)] = Published{hash, parent_hash, {tokens.begin(), tokens.end()}};
  index_[hash] = block;
}

std::optional<int> BlockPool::lookup(std::uint64_t hash, std::uint64_t parent_hash, std::span<const int> tokens) const {
  const auto it = index_.find(hash);
  if (it == index_.end()) return std::nullopt;
  const auto& p = published_[static_cast<std::size_t>(it->second)];
  if (!p || p->parent != parent_hash || !std::equal(tokens.begin(), tokens.end(), p->tokens.begin(), p->tokens.end()))
    return std::nullopt;
  return it->second;
}

void BlockPool::check() const {
  auto fail = [](const std::string& what) { throw Error("KV pool invariant broken: " + what); };
  std::vector<char> seen(static_cast<std::size_t>(num_blocks_), 0);
  for (int b : free_) {
    const auto i = static_cast<std::size_t>(b);
    if (seen[i]) fail("block " + std::to_string(b) + " is on the free list twice");
    seen[i] = 1;
    if (!is_free_[i]) fail("block " + std::to_string(b) + " is on the free list but not marked free");
    if (refs_[i] != 0) fail("free block " + std::to_string(b) + " has reference count " + std::to_string(refs_[i]));
  }
  for (int b = 0; b < num_blocks_; ++b) {
    const auto i = static_cast<std::size_t>(b);
    if (!seen[i] && is_free_[i]) fail("block " + std::to_string(b) + " is marked free but not on the free list");
    if (!seen[i] && refs_[i] <= 0)
      fail("block " + std::to_string(b) + " is neither free nor referenced (count " + std::to_string(refs_[i]) + ")");
  }
  for (const auto& [hash, b] : index_) {
    const auto& p = published_[static_cast<std::size_t>(b)];
    if (!p || p->hash != hash) fail("the prefix index points at block " + std::to_string(b) + " for another hash");
    if (static_cast<int>(p->tokens.size()) != block_size_)
      fail("published block " + std::to_string(b) + " is not full");
  }
}

}  // namespace llm::stage03
