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
///   q heads [head_begin, head_begin + n_heads); kv_heads: the model's KV heads the rank keeps,
///   in its local order (the local grouping is n_heads / kv_heads.size() query heads per KV
///   head; a KV head may appear twice when it is copied per query head); SwiGLU columns
///   [hidden_begin, hidden_begin + hidden); classifier rows (vocabulary entries)
///   [vocab_begin, vocab_begin + vocab): the rank computes those logits, rank 0 gathers them.
struct RankShard {
  int head_begin = 0, n_heads = 0;
  std::vector<int> kv_heads;
  int hidden_begin = 0, hidden = 0;
  int vocab_begin = 0, vocab = 0;
};

/// The split of a model over `ranks` ranks.
struct ShardPlan {
  int ranks = 1;
  /// True when there are fewer KV heads than ranks: each KV head is then kept (and computed) by
  /// every rank whose query heads read it.
  bool kv_replicated = false;
  std::vector<RankShard> shards;  ///< [ranks]
  /// One line per rank: "rank 0: q heads 0-5, kv heads 0-1, hidden 0-767, vocab 0-24575".
  std::string describe() const;
};

/// Splits `c` over `ranks` ranks. GQA: a rank always holds whole KV groups (a KV head and the
/// n_heads / n_kv_heads query heads that read it), so its local heads keep the model's grouping.
///  - n_kv_heads >= ranks: the KV groups are dealt out as evenly as they go (9 heads in 3
///    groups over 2 ranks: 6 + 3 query heads; even when n_kv_heads divides by ranks).
///  - n_kv_heads < ranks: the query heads are split in near-equal ranges and each rank keeps
///    the KV heads they read (replicated over ranks). When a rank's query heads straddle two
///    groups unevenly (8 heads, 2 KV heads over 3 ranks: heads 3-5 read KV 0, 1, 1) the rank
///    keeps one copy of the KV head per query head, so its local grouping stays uniform.
///  - fewer query heads than ranks is refused: llm::Error naming n_heads, n_kv_heads and the
///    rank count.
/// The SwiGLU width is split in near-equal slices of whole units of `align` columns (1, or 32
/// for stage 05's block formats, so that no block of W2's input columns is cut); refused when
/// there are fewer units than ranks. The head boundaries (multiples of head_dim columns of Wo)
/// must fall on multiples of `align` too, else llm::Error naming the widths. The classifier is
/// split by whole vocabulary rows (no block is ever cut), in contiguous ranges sized so that each
/// rank's layers plus classifier rows come to about the same number of weights (a rank with
/// fewer heads takes more rows); every rank gets at least one.
ShardPlan plan_shards(const ModelConfig& c, int ranks, int align = 1);

}  // namespace llm::stage07
