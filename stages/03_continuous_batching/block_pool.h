// block_pool.h: the paged KV cache's memory. K/V live in fixed-size blocks of `block_size` tokens
// taken from one pool; a sequence holds a list of blocks (its block table, see scheduler.h) and
// asks for a new one only when its last block is full. Nothing is reserved for tokens that may
// never come, so the only waste is the unfilled tail of each sequence's last block.
//
//   pool:   [block 0][block 1][block 2] ... [block N-1]
//   block:  layer 0: K [block_size, kv_dim]  V [block_size, kv_dim]
//           layer 1: K ...                   V ...
//
// Blocks are shared: a full block is published under the hash of its tokens and of every token
// before it (prefix_hash.h), and a later sequence with the same prefix takes a reference to it
// instead of computing it again. Each block has a reference count (the sequences whose table
// lists it). A block whose count drops to zero goes to the back of the free list but keeps its
// K/V and its hash, so it can still be found and revived until allocate() hands it out again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/model_config.h"

namespace llm::stage03 {

/// The pool of K/V blocks, their reference counts, the free list and the prefix index.
class BlockPool {
 public:
  /// Reserves num_blocks blocks of block_size tokens for every layer of `config`. Throws
  /// llm::Error for a size below 1. With host_storage false the pool only keeps the books
  /// (reference counts, free list, prefix index) and keys()/values() must not be called: the
  /// K/V live elsewhere, indexed by the same block numbers (stage 04 keeps them on the GPU).
  /// kv_element_bytes is the size of one stored K/V value where they live (4 here, 2 for fp16 on
  /// the GPU, 1 for stage 05's int8/fp8); kv_scale_bytes what each token's K (and V) row stores
  /// per KV head besides (stage 05's int8/fp8 scale: 4). They only set what bytes_per_block() reports.
  BlockPool(const ModelConfig& config, int num_blocks, int block_size, bool host_storage = true,
            std::size_t kv_element_bytes = sizeof(float), std::size_t kv_scale_bytes = 0);

  int block_size() const { return block_size_; }
  int num_blocks() const { return num_blocks_; }
  /// Blocks on the free list (reference count 0), cached ones included.
  int free_blocks() const { return static_cast<int>(free_.size()); }
  int used_blocks() const { return num_blocks_ - free_blocks(); }
  int ref_count(int block) const { return refs_.at(static_cast<std::size_t>(block)); }

  /// Keys of one block in one layer: [block_size, kv_dim]; token slot s is row s.
  float* keys(int block, int layer) { return &k_[offset(block, layer)]; }
  const float* keys(int block, int layer) const { return &k_[offset(block, layer)]; }
  /// Values, laid out like keys().
  float* values(int block, int layer) { return &v_[offset(block, layer)]; }
  const float* values(int block, int layer) const { return &v_[offset(block, layer)]; }

  /// Takes the block at the front of the free list (the one freed longest ago), forgets its
  /// cached prefix if it had one, and gives it reference count 1. Throws llm::Error when the
  /// free list is empty: the scheduler checks free_blocks() first.
  int allocate();
  /// One more sequence lists `block` (a prefix-cache hit). A block on the free list is taken
  /// off it, with its K/V intact.
  void retain(int block);
  /// One sequence fewer lists `block`. At zero it goes to the back of the free list.
  void release(int block);

  /// Registers a full block under `hash` (prefix_hash.h), with the hash of the block before it
  /// and its tokens, so that lookup() can find it. Does nothing if another block already holds
  /// that hash.
  void publish(int block, std::uint64_t hash, std::uint64_t parent_hash, std::span<const int> tokens);
  /// The block published under `hash`, if it is still cached and its parent hash and tokens are
  /// the same (so that a 64-bit collision cannot hand out the wrong K/V).
  std::optional<int> lookup(std::uint64_t hash, std::uint64_t parent_hash, std::span<const int> tokens) const;
  /// Blocks that hold a published prefix (in use or free).
  int cached_blocks() const { return static_cast<int>(index_.size()); }

  /// Bytes of one block: 2 (K, V) x layers x block_size x (kv_dim x kv_element_bytes +
  /// n_kv_heads x kv_scale_bytes).
  std::size_t bytes_per_block() const;
  /// Bytes of one token's K/V over all layers.
  std::size_t bytes_per_token() const { return bytes_per_block() / static_cast<std::size_t>(block_size_); }
  std::size_t bytes_total() const { return bytes_per_block() * static_cast<std::size_t>(num_blocks_); }

  /// Checks the pool's own invariants and throws llm::Error naming the first one broken: every
  /// block is either on the free list with count 0 or off it with count > 0, never both; the
  /// free list has no duplicates; the prefix index points at blocks that carry that hash.
  void check() const;

 private:
  std::size_t offset(int block, int layer) const {
    return (static_cast<std::size_t>(block) * static_cast<std::size_t>(layers_) + static_cast<std::size_t>(layer)) *
           static_cast<std::size_t>(block_size_) * static_cast<std::size_t>(kv_dim_);
  }
  void forget(int block);

  struct Published {
    std::uint64_t hash = 0, parent = 0;
    std::vector<int> tokens;
  };

  int num_blocks_, block_size_, layers_, kv_dim_, n_kv_heads_;
  std::size_t element_bytes_, scale_bytes_;
  std::vector<float> k_, v_;  // [num_blocks, layers, block_size, kv_dim]
  std::vector<int> refs_;
  std::list<int> free_;                              // front = freed longest ago
  std::vector<std::list<int>::iterator> free_pos_;   // where each free block sits in free_
  std::vector<char> is_free_;
  std::vector<std::optional<Published>> published_;  // per block
  std::unordered_map<std::uint64_t, int> index_;     // hash -> block
};

}  // namespace llm::stage03
