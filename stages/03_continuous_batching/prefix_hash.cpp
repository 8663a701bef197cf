#include "prefix_hash.h"

namespace llm::stage03 {

namespace {
std::uint64_t mix(std::uint64_t x) {  // splitmix64's finaliser: every input bit moves every output bit
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
}  // namespace

std::uint64_t block_hash(std::uint64_t parent, std::span<const int> tokens) {
  std::uint64_t h = mix(parent ^ 0x9e3779b97f4a7c15ULL);
  for (int t : tokens) h = mix(h ^ static_cast<std::uint32_t>(t));
  return mix(h + tokens.size());
}

PrefixMatch match_prefix(const BlockPool& pool, std::span<const int> tokens, int max_blocks) {
  PrefixMatch m;
  // BEGIN EXERCISE(prefix-match): follow the hash chain block by block while the pool has each block
  const auto bs = static_cast<std::size_t>(pool.block_size());
  std::uint64_t parent = kRootHash;
  for (int i = 0; i < max_blocks && (static_cast<std::size_t>(i) + 1) * bs <= tokens.size(); ++i) {
    const auto block_tokens = tokens.subspan(static_cast<std::size_t>(i) * bs, bs);
    const std::uint64_t h = block_hash(parent, block_tokens);
    const auto hit = pool.lookup(h, parent, block_tokens);
    if (!hit) break;
    m.blocks.push_back(*hit);
    m.hashes.push_back(h);
    parent = h;
  }
  // END EXERCISE
  return m;
}

}  // namespace llm::stage03
