// prefix_hash.h: how a full block is recognised as "already computed". Block i of a sequence is
// named by a hash of its own tokens *and* the hash of block i-1, so the name stands for the
// whole prefix up to the end of block i (a hash chain). Two sequences share block i only if
// every token before it is the same too, which is exactly when its K/V are the same (K and V of
// a token depend on every token before it).
//
//   tokens:  [ You are a helpful | assistant. Answer | the question: ... ]
//   hashes:    h0 = H(root, b0)    h1 = H(h0, b1)      (partial block: not hashed)
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "block_pool.h"

namespace llm::stage03 {

/// The parent hash of a sequence's first block.
inline constexpr std::uint64_t kRootHash = 0x6a09e667f3bcc908ULL;

/// Hash of a full block of `tokens` that follows the prefix whose last block hashed to `parent`.
std::uint64_t block_hash(std::uint64_t parent, std::span<const int> tokens);

/// The cached blocks a sequence can reuse: its first blocks.size() blocks, and their chain hashes.
struct PrefixMatch {
  std::vector<int> blocks;
  std::vector<std::uint64_t> hashes;
};

/// Walks the full blocks at the start of `tokens` along the hash chain and looks each one up in
/// the pool, stopping at the first that is not cached or after max_blocks. Takes no references:
/// the caller retains the blocks it keeps.
PrefixMatch match_prefix(const BlockPool& pool, std::span<const int> tokens, int max_blocks);

}  // namespace llm::stage03
