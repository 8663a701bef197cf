#include "shard_plan.h"

#include <sstream>

#include "common/error.h"

namespace llm::stage07 {

namespace {

std::string counts(const ModelConfig& c, int ranks) {
  return "n_heads " + std::to_string(c.n_heads) + ", n_kv_heads " + std::to_string(c.n_kv_heads) + " over " +
         std::to_string(ranks) + " ranks";
}

}  // namespace

std::string ShardPlan::describe() const {
  std::ostringstream out;
  for (std::size_t r = 0; r < shards.size(); ++r) {
    const RankShard& x = shards[r];
    out << "rank " << r << ": q heads " << x.head_begin << "-" << x.head_begin + x.n_heads - 1 << ", kv heads";
    for (int g : x.kv_heads) out << ' ' << g;
    out << (kv_replicated ? " (replicated)" : "") << ", hidden " << x.hidden_begin << "-"
        << x.hidden_begin + x.hidden - 1 << ", vocab " << x.vocab_begin << "-" << x.vocab_begin + x.vocab - 1 << "\n";
  }
  return out.str();
}

ShardPlan plan_shards(const ModelConfig& c, int ranks, int align) {
  if (ranks < 1) throw Error("tensor parallel: " + std::to_string(ranks) + " ranks (must be at least 1)");
  if (c.n_kv_heads < 1 || c.n_heads % c.n_kv_heads != 0)
    throw Error("tensor parallel: " + counts(c, ranks) + ": n_heads must be a multiple of n_kv_heads");
  if (c.hidden_dim < ranks)
    throw Error("tensor parallel: hidden_dim " + std::to_string(c.hidden_dim) + " cannot be split over " +
                std::to_string(ranks) + " ranks");
  if (align < 1) align = 1;
  if (c.hidden_dim % align != 0 || c.hidden_dim / align < ranks)
    throw Error("tensor parallel: hidden_dim " + std::to_string(c.hidden_dim) + " in blocks of " +
                std::to_string(align) + " cannot be split over " + std::to_string(ranks) + " ranks");
  if (c.vocab_size < ranks)
    throw Error("tensor parallel: vocab_size " + std::to_string(c.vocab_size) + " cannot be split over " +
                std::to_string(ranks) + " ranks");
  const int group = c.n_heads / c.n_kv_heads;  // query heads per KV head
  if (c.n_heads < ranks)
    throw Error("tensor parallel: " + counts(c, ranks) + " cannot be split: fewer query heads than ranks");
  ShardPlan plan;
  plan.ranks = ranks;
  plan.kv_replicated = c.n_kv_heads < ranks;
  for (int r = 0; r < ranks; ++r) {
    RankShard s;
    if (!plan.kv_replicated) {
      // BEGIN EXERCISE(tp-kv-groups): deal whole KV groups to the ranks, as evenly as they go
      const int kv_begin = static_cast<int>(static_cast<long long>(r) * c.n_kv_heads / ranks);
      const int kv_end = static_cast<int>(static_cast<long long>(r + 1) * c.n_kv_heads / ranks);
      for (int g = kv_begin; g < kv_end; ++g) s.kv_heads.push_back(g);
      s.head_begin = kv_begin * group;
      s.n_heads = (kv_end - kv_begin) * group;
      // END EXERCISE
    } else {
      s.head_begin = static_cast<int>(static_cast<long long>(r) * c.n_heads / ranks);
      s.n_heads = static_cast<int>(static_cast<long long>(r + 1) * c.n_heads / ranks) - s.head_begin;
      const int first = s.head_begin / group, last = (s.head_begin + s.n_heads - 1) / group;
      if (first == last)
        s.kv_heads = {first};  // all its query heads read one KV head
      else
        for (int h = s.head_begin; h < s.head_begin + s.n_heads; ++h) s.kv_heads.push_back(h / group);
    }
    // The SwiGLU width in units of `align` columns (block formats: never cut a block of W2).
    const int units = c.hidden_dim / align;
    s.hidden_begin = static_cast<int>(static_cast<long long>(r) * units / ranks) * align;
    s.hidden = static_cast<int>(static_cast<long long>(r + 1) * units / ranks) * align - s.hidden_begin;
    if (align > 1 && (s.head_begin * c.head_dim % align != 0 || s.n_heads * c.head_dim % align != 0))
      throw Error("tensor parallel: rank " + std::to_string(r) + "'s query heads start at column " +
                  std::to_string(s.head_begin * c.head_dim) + " of Wo and span " +
                  std::to_string(s.n_heads * c.head_dim) + ": not on the weight format's blocks of " +
                  std::to_string(align));
    // The classifier's rows (whole rows of [vocab, dim]: a block format's blocks stay whole).
    s.vocab_begin = static_cast<int>(static_cast<long long>(r) * c.vocab_size / ranks);
    s.vocab = static_cast<int>(static_cast<long long>(r + 1) * c.vocab_size / ranks) - s.vocab_begin;
    plan.shards.push_back(s);
  }
  return plan;
}

}  // namespace llm::stage07
