// forward.h: the Llama forward pass over a flat list of tokens, with attention left to the stage.
//
// Stage 00 writes the whole pass out by hand. From stage 01 on, what changes from stage to stage
// is only where K and V live and which keys each query may see (a cache, a padded batch, a paged
// pool): the stage supplies that as an AttentionBackend and everything else is this one function.
// The tokens may belong to several sequences; `positions` says where each one sits in its own
// sequence (RoPE), and the backend knows which sequence each row belongs to.
#pragma once

#include <span>
#include <vector>

#include "common/model_weights.h"

namespace llm {

/// The stage-specific part of attention: storing K/V and attending over them.
class AttentionBackend {
 public:
  virtual ~AttentionBackend() = default;
  /// Called once per layer with this step's n rows, already rotated by RoPE:
  ///   q: [n, n_heads * head_dim], k and v: [n, n_kv_heads * head_dim].
  /// Stores k and v, then writes out: [n, n_heads * head_dim], the attention of each query
  /// over the keys its sequence may see (its own earlier tokens and itself).
  virtual void attend(int layer, const float* q, const float* k, const float* v, float* out, int n) = 0;
  /// Called once after the last layer: the step's rows are now part of their sequences.
  virtual void finish_step(int n) = 0;
};

/// Activation buffers reused from step to step (grown on demand, never shrunk), so that a
/// decode step does not reallocate them.
struct ForwardScratch {
  std::vector<float> x, h, q, k, v, att, proj, gate, up;
};

/// Runs tokens[i] at positions[i] through every layer and returns the logits of the rows listed
/// in logit_rows: [logit_rows.size(), vocab], in that order. Throws llm::Error for a token id
/// outside the vocabulary or a position outside the context.
std::vector<float> forward_tokens(const ModelWeights& w, std::span<const int> tokens, std::span<const int> positions,
                                  std::span<const int> logit_rows, AttentionBackend& attention,
                                  ForwardScratch& scratch);

/// Bytes one decode step reads from memory for the weights: every matrix once, plus the
/// embedding rows (negligible) — the numerator of the decode roofline.
double weight_bytes_per_step(const ModelWeights& w);

}  // namespace llm
