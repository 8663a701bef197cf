#include "shard_plan.h"

#include <algorithm>
#include <sstream>
#include <vector>

#include "common/error.h"

namespace llm::stage07 {

namespace {

std::string counts(const ModelConfig& c, int ranks) {
  return "n_heads " + std::to_string(c.n_heads) + ", n_kv_heads " + std::to_string(c.n_kv_heads) + " over " +
         std::to_string(ranks) + " ranks";
}

/// The classifier's rows (whole rows of [vocab, dim]: a block format's blocks stay whole), dealt
/// so that every rank multiplies about as many weights per token in all: a rank with fewer heads
/// (SmolLM2's 3 KV groups over 2 ranks: 1 and 2) takes more of the vocabulary. Water-filling: a
/// rank whose layers alone exceed the even share gets one row; at least one row each.
void split_vocabulary(const ModelConfig& c, ShardPlan& plan) {
  const auto dim = static_cast<double>(c.dim), hd = static_cast<double>(c.head_dim);
  std::vector<double> layer;  // weights per layer of each rank's shard
  for (const RankShard& s : plan.shards)
    layer.push_back(2.0 * s.n_heads * hd * dim + 2.0 * static_cast<double>(s.kv_heads.size()) * hd * dim +
                    3.0 * s.hidden * dim);
  const int ranks = plan.ranks;
  std::vector<bool> active(static_cast<std::size_t>(ranks), true);
  double target = 0.0;
  for (bool changed = true; changed;) {
    changed = false;
    double sum = static_cast<double>(c.vocab_size) * dim / c.n_layers;  // the classifier, per layer
    int n = 0;
    for (int r = 0; r < ranks; ++r)
      if (active[static_cast<std::size_t>(r)]) sum += layer[static_cast<std::size_t>(r)], ++n;
    target = sum / n;
    for (int r = 0; r < ranks; ++r)
      if (active[static_cast<std::size_t>(r)] && layer[static_cast<std::size_t>(r)] >= target && n > 1)
        active[static_cast<std::size_t>(r)] = false, changed = true, --n;
  }
  std::vector<int> rows(static_cast<std::size_t>(ranks), 1);
  int left = c.vocab_size - ranks;
  for (int r = 0; r < ranks && left > 0; ++r) {
    if (!active[static_cast<std::size_t>(r)]) continue;
    const double want = (target - layer[static_cast<std::size_t>(r)]) * c.n_layers / dim;
    const int extra = std::min(left, std::max(0, static_cast<int>(want) - 1));
    rows[static_cast<std::size_t>(r)] += extra;
    left -= extra;
  }
  for (int r = ranks - 1; left > 0; r = (r + ranks - 1) % ranks, --left) ++rows[static_cast<std::size_t>(r)];
  int begin = 0;
  for (int r = 0; r < ranks; ++r) {
    plan.shards[static_cast<std::size_t>(r)].vocab_begin = begin;
    plan.shards[static_cast<std::size_t>(r)].vocab = rows[static_cast<std::size_t>(r)];
    begin += rows[static_cast<std::size_t>(r)];
  }
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
    plan.shards.push_back(s);
  }
  split_vocabulary(c, plan);
  return plan;
}

}  // namespace llm::stage07
