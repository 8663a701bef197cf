// packed_weights.h: a model's weights as the GPU keeps them: matrices in fp16, the norms in
// fp32, and the projections that read the same input concatenated so that one matmul does them:
//   wqkv = [wq; wk; wv]   [(n_heads + 2 n_kv_heads) * head_dim, dim]   (output: q | k | v)
//   w13  = [w_gate; w_up] [2 * hidden_dim, dim]                         (output: gate | up)
// Both backends of this stage start from it: the CUDA one uploads the bits, the CPU one turns
// them back into floats (fp16-exact values, so its arithmetic sees what the GPU's sees).
#pragma once

#include <cstdint>
#include <vector>

#include "common/model_weights.h"

namespace llm::stage04 {

/// One layer. Matrices are fp16 bits, row-major [out, in].
struct PackedLayer {
  std::vector<float> attn_norm, ffn_norm;  ///< [dim]
  std::vector<std::uint16_t> wqkv;         ///< [(n_heads + 2 n_kv_heads) * head_dim, dim]
  std::vector<std::uint16_t> wo;           ///< [dim, n_heads * head_dim]
  std::vector<std::uint16_t> w13;          ///< [2 * hidden_dim, dim]
  std::vector<std::uint16_t> w2;           ///< [dim, hidden_dim]
};

/// The whole model.
struct PackedWeights {
  ModelConfig config;
  std::vector<std::uint16_t> embed;       ///< [vocab, dim]
  std::vector<float> output_norm;         ///< [dim]
  std::vector<std::uint16_t> classifier;  ///< [vocab, dim]; empty when tied to embed
  std::vector<PackedLayer> layers;

  const std::vector<std::uint16_t>& classifier_or_embed() const { return classifier.empty() ? embed : classifier; }
  /// Bytes one decode step reads: every matrix once (fp16) and the norms (fp32).
  double bytes_per_step() const;
};

/// Rounds and concatenates the fp32 weights of a loaded model.
PackedWeights pack_weights(const ModelWeights& w);

/// Bytes of fp16 weights a model of this shape has (embedding, classifier unless tied, layers):
/// what must fit on the device before any KV block does.
std::size_t packed_weight_bytes(const ModelConfig& c, bool tied_embeddings);

}  // namespace llm::stage04
