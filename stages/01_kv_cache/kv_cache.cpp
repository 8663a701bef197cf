#include "kv_cache.h"

#include <cstring>
#include <string>

#include "cached_attention.h"
#include "common/checked.h"
#include "common/error.h"

namespace llm::stage01 {

KvCache::KvCache(const ModelConfig& config, int capacity) : config_(config), capacity_(capacity) {
  if (capacity <= 0) throw Error("KV cache: capacity " + std::to_string(capacity) + " must be positive");
  // capacity comes from a request (prompt + max_new_tokens): the slab's size is checked.
  const std::string what = "KV cache of " + std::to_string(capacity) + " tokens";
  const std::size_t floats =
      checked_mul(checked_mul(static_cast<std::size_t>(config.n_layers), static_cast<std::size_t>(capacity), what),
                  static_cast<std::size_t>(config.kv_dim()), what);
  k_.assign(floats, 0.0f);
  v_.assign(floats, 0.0f);
}

std::size_t KvCache::bytes_per_token(const ModelConfig& c) {
  return 2 * static_cast<std::size_t>(c.n_layers) * static_cast<std::size_t>(c.kv_dim()) * sizeof(float);
}

void KvCache::append(int layer, const float* k, const float* v, int n) {
  if (length_ + n > capacity_) {
    throw Error("KV cache: " + std::to_string(length_) + " cached + " + std::to_string(n) + " new tokens exceed its " +
                std::to_string(capacity_) + " slots");
  }
  // BEGIN EXERCISE(kv-cache-append): copy this step's K and V rows to the end of the layer's cache
  const std::size_t kvd = static_cast<std::size_t>(config_.kv_dim());
  const std::size_t at = layer_offset(layer) + static_cast<std::size_t>(length_) * kvd;
  std::memcpy(&k_[at], k, sizeof(float) * kvd * static_cast<std::size_t>(n));
  std::memcpy(&v_[at], v, sizeof(float) * kvd * static_cast<std::size_t>(n));
  // END EXERCISE
}

void KvCache::attend(int layer, const float* q, const float* k, const float* v, float* out, int n) {
  append(layer, k, v, n);
  cached_attention(out, q, keys(layer), values(layer), n, length_, config_.n_heads, config_.n_kv_heads,
                   config_.head_dim);
}

}  // namespace llm::stage01
