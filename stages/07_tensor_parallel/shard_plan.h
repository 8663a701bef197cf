// shard_plan.h: which attention heads, KV heads and slice of the SwiGLU width each rank owns
// (Megatron-LM's tensor parallelism). Attention is split by whole heads and the MLP by slices
// of hidden_dim, so every rank computes its heads' attention and its slice of the MLP with no
// communication; the output projections (Wo, W2) then give partial sums of the residual update
// that one all-reduce per projection adds up.
#pragma once

#include <string>
#include <vector>

#include "common/model_config.h"

namespace llm::stage07 {

/// One rank's part of every layer (the same for all layers).
///   q heads [head_begin, head_begin + n_heads), KV heads [kv_begin, kv_begin + n_kv_heads),
///   SwiGLU columns [hidden_begin, hidden_begin + hidden).
struct RankShard {
  int head_begin = 0, n_heads = 0;
  int kv_begin = 0, n_kv_heads = 0;
  int hidden_begin = 0, hidden = 0;
};

/// The split of a model over `ranks` ranks.
struct ShardPlan {
  int ranks = 1;
  /// True when there are fewer KV heads than ranks: each KV head is then kept (and computed) by
  /// every rank whose query heads read it (N / n_kv_heads ranks each).
  bool kv_replicated = false;
  std::vector<RankShard> shards;  ///< [ranks]
  /// One line per rank: "rank 0: q heads 0-5, kv heads 0-1, hidden 0-767".
  std::string describe() const;
};

/// Splits `c` over `ranks` ranks. GQA: a rank always holds whole KV groups (a KV head and the
/// n_heads / n_kv_heads query heads that read it), so its local heads keep the model's grouping.
///  - n_kv_heads >= ranks: the KV groups are dealt out as evenly as they go (9 heads in 3
///    groups over 2 ranks: 6 + 3 query heads; even when n_kv_heads divides by ranks).
///  - n_kv_heads < ranks, ranks a multiple of n_kv_heads and each group's query heads dividing
///    by ranks / n_kv_heads: the group's query heads are split and its KV head replicated.
///  - anything else is refused: llm::Error naming n_heads, n_kv_heads and the rank count.
/// The SwiGLU width is split in ranks near-equal slices (refused when hidden_dim < ranks).
/// `align` > 1 (stage 05's block formats): every head and slice boundary must fall on a
/// multiple of `align` input columns of Wo / W2, else llm::Error naming the widths.
ShardPlan plan_shards(const ModelConfig& c, int ranks, int align = 1);

}  // namespace llm::stage07
