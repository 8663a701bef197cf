// model_config.h: the shape of a Llama-family model, always read from the model file.
#pragma once

#include <string>

namespace llm {

/// Hyper-parameters of a Llama-architecture model (RMSNorm, RoPE, SwiGLU, GQA).
struct ModelConfig {
  std::string architecture = "llama";
  int dim = 0;         ///< model (residual stream) width
  int n_layers = 0;    ///< transformer blocks
  int n_heads = 0;     ///< query heads
  int n_kv_heads = 0;  ///< key/value heads (n_heads must be a multiple)
  int head_dim = 0;    ///< per-head width; q is [n_heads * head_dim], k/v [n_kv_heads * head_dim]
  int hidden_dim = 0;  ///< SwiGLU inner width
  int vocab_size = 0;
  int context_length = 0;  ///< the longest sequence the model was trained for (tokens)
  float rope_theta = 10000.0f;
  float norm_eps = 1e-5f;
  bool tied_embeddings = true;  ///< classifier reuses token_embd

  // The largest value validate() accepts for each field: far above any real model, low enough
  // that every size computed from them fits in 64 bits (and each per-tensor count in 2^40).
  static constexpr int kMaxDim = 1 << 16;
  static constexpr int kMaxLayers = 1024;
  static constexpr int kMaxHeads = 1024;
  static constexpr int kMaxHeadDim = 4096;
  static constexpr int kMaxHiddenDim = 1 << 18;
  static constexpr int kMaxVocab = 1 << 22;
  static constexpr int kMaxContext = 1 << 24;

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  /// Throws llm::Error naming `source` and the bad field if the numbers are inconsistent.
  void validate(const std::string& source) const;
  /// One line: "dim 576, 30 layers, 9 heads (3 kv) x 64, hidden 1536, vocab 49152, ctx 8192".
  std::string summary() const;
};

}  // namespace llm
