#include "common/model_config.h"

#include <cmath>

#include "common/error.h"

namespace llm {

void ModelConfig::validate(const std::string& source) const {
  auto positive = [&](const char* field, long long v, long long limit) {
    if (v <= 0 || v > limit) {
      throw Error(source + ": " + field + " is " + std::to_string(v) + " (must be between 1 and " +
                  std::to_string(limit) + ")");
    }
  };
  positive("dim", dim, kMaxDim);
  positive("n_layers", n_layers, kMaxLayers);
  positive("n_heads", n_heads, kMaxHeads);
  positive("n_kv_heads", n_kv_heads, kMaxHeads);
  positive("head_dim", head_dim, kMaxHeadDim);
  positive("hidden_dim", hidden_dim, kMaxHiddenDim);
  positive("vocab_size", vocab_size, kMaxVocab);
  positive("context_length", context_length, kMaxContext);
  if (n_heads % n_kv_heads != 0) {
    throw Error(source + ": n_heads (" + std::to_string(n_heads) + ") is not a multiple of n_kv_heads (" +
                std::to_string(n_kv_heads) + ")");
  }
  if (head_dim % 2 != 0)
    throw Error(source + ": head_dim is " + std::to_string(head_dim) + ": RoPE needs an even head size");
  if (!(rope_theta > 0.0f) || !std::isfinite(rope_theta))
    throw Error(source + ": rope theta is " + std::to_string(rope_theta));
  if (!(norm_eps > 0.0f) || !std::isfinite(norm_eps))
    throw Error(source + ": norm epsilon is " + std::to_string(norm_eps));
}

std::string ModelConfig::summary() const {
  return "dim " + std::to_string(dim) + ", " + std::to_string(n_layers) + " layers, " + std::to_string(n_heads) +
         " heads (" + std::to_string(n_kv_heads) + " kv) x " + std::to_string(head_dim) + ", hidden " +
         std::to_string(hidden_dim) + ", vocab " + std::to_string(vocab_size) + ", ctx " +
         std::to_string(context_length) + (tied_embeddings ? ", tied embeddings" : "");
}

}  // namespace llm
