#include "shard_plan.h"

#include "common/error.h"

namespace llm::stage07 {

namespace {

std::string counts(const ModelConfig& c, int ranks) {
  return "n_heads " + std::to_string(c.n_heads) + ", n_kv_heads " + std::to_string(c.n_kv_heads) + " over " +
         std::to_string(ranks) + " ranks";
}

}  // namespace

std::string ShardPlan::describe() const {
  std::string s;
  for (std::size_t r = 0; r < shards.size(); ++r) {
    const RankShard& x = shards[r];
    s += "rank " + std::to_string(r) + ": q heads " + std::to_string(x.head_begin) + "-" +
         std::to_string(x.head_begin + x.n_heads - 1) + ", kv heads " + std::to_string(x.kv_begin) + "-" +
         std::to_string(x.kv_begin + x.n_kv_heads - 1) + (kv_replicated ? " (replicated)" : "") + ", hidden " +
         std::to_string(x.hidden_begin) + "-" + std::to_string(x.hidden_begin + x.hidden - 1) + "\n";
  }
  return s;
}

ShardPlan plan_shards(const ModelConfig& c, int ranks, int align) {
  if (ranks < 1) throw Error("tensor parallel: " + std::to_string(ranks) + " ranks (must be at least 1)");
  if (c.n_kv_heads < 1 || c.n_heads % c.n_kv_heads != 0)
    throw Error("tensor parallel: " + counts(c, ranks) + ": n_heads must be a multiple of n_kv_heads");
  if (c.hidden_dim < ranks)
    throw Error("tensor parallel: hidden_dim " + std::to_string(c.hidden_dim) + " cannot be split over " +
                std::to_string(ranks) + " ranks");
  const int group = c.n_heads / c.n_kv_heads;  // query heads per KV head
  ShardPlan plan;
  plan.ranks = ranks;
  plan.kv_replicated = c.n_kv_heads < ranks;
  if (plan.kv_replicated && (ranks % c.n_kv_heads != 0 || group % (ranks / c.n_kv_heads) != 0))
    throw Error("tensor parallel: " + counts(c, ranks) +
                " cannot be split: with fewer KV heads than ranks, the rank count must be a multiple of "
                "n_kv_heads and each KV head's " +
                std::to_string(group) + " query heads must divide by ranks / n_kv_heads");
  for (int r = 0; r < ranks; ++r) {
    RankShard s;
    if (!plan.kv_replicated) {
      s.kv_begin = static_cast<int>(static_cast<long long>(r) * c.n_kv_heads / ranks);
      s.n_kv_heads = static_cast<int>(static_cast<long long>(r + 1) * c.n_kv_heads / ranks) - s.kv_begin;
      s.head_begin = s.kv_begin * group;
      s.n_heads = s.n_kv_heads * group;
    } else {
      const int share = ranks / c.n_kv_heads;  // ranks that read one KV head
      s.kv_begin = r / share;
      s.n_kv_heads = 1;
      s.n_heads = group / share;
      s.head_begin = s.kv_begin * group + (r % share) * s.n_heads;
    }
    s.hidden_begin = static_cast<int>(static_cast<long long>(r) * c.hidden_dim / ranks);
    s.hidden = static_cast<int>(static_cast<long long>(r + 1) * c.hidden_dim / ranks) - s.hidden_begin;
    if (align > 1 && (s.head_begin * c.head_dim % align != 0 || s.n_heads * c.head_dim % align != 0))
      throw Error("tensor parallel: rank " + std::to_string(r) + "'s query heads start at column " +
                  std::to_string(s.head_begin * c.head_dim) + " of Wo and span " +
                  std::to_string(s.n_heads * c.head_dim) + ": not on the weight format's blocks of " +
                  std::to_string(align));
    if (align > 1 && (s.hidden_begin % align != 0 || s.hidden % align != 0))
      throw Error("tensor parallel: rank " + std::to_string(r) + "'s slice of hidden_dim " +
                  std::to_string(c.hidden_dim) + " starts at " + std::to_string(s.hidden_begin) + " and spans " +
                  std::to_string(s.hidden) + ": not on the weight format's blocks of " + std::to_string(align));
    plan.shards.push_back(s);
  }
  return plan;
}

}  // namespace llm::stage07
