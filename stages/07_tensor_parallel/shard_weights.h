// shard_weights.h: one rank's weights cut out of the whole model's, as a model of its own whose
// config has the rank's head and hidden counts (dim, head_dim, vocab unchanged). Stage 04's CPU
// backend runs it as it is; only the all-reduces after Wo and W2 (tp_matrices.h) are added.
#pragma once

#include "common/model_weights.h"
#include "shard_plan.h"

namespace llm::stage07 {

/// Wq/Wk/Wv and W_gate/W_up: the rank's rows (its heads' outputs, its hidden slice: the
/// "column-parallel" layers, y = x W^T split by output columns of y). Wo and W_down: the same
/// heads' / slice's input columns ("row-parallel": each rank's product is a partial sum).
/// Norms and the embedding are copied whole (replicated); the classifier is not in it (the
/// shard is stored as tied to its embedding, whose rows only embed_row reads): see
/// shard_classifier.
ModelWeights shard_weights(const ModelWeights& w, const RankShard& s);

/// The rank's rows of the classifier ([vocab, dim]: `output`, or `token_embd` when tied) as a
/// layer-less model of s.vocab entries, tied (its token_embd is the slice), with the output norm:
/// its CpuMatrices' classify gives the rank's logits [n, s.vocab].
ModelWeights shard_classifier(const ModelWeights& w, const RankShard& s);

}  // namespace llm::stage07
