// kv_cache.h: the K/V cache of one sequence. Every layer keeps the keys and values of every token
// seen so far, so a new token computes only its own K/V and attends over the stored ones.
//
//   layer l:  keys   [capacity, n_kv_heads * head_dim]   rows 0 .. length()-1 are filled
//             values [capacity, n_kv_heads * head_dim]
//
// Size per token: 2 (K and V) x layers x kv_heads x head_dim x 4 bytes (fp32).
#pragma once

#include <cstddef>
#include <vector>

#include "common/forward.h"
#include "common/model_config.h"

namespace llm::stage01 {

/// The cache of one sequence, reserved up front for `capacity` tokens. It is the stage's
/// AttentionBackend: forward_tokens hands it each layer's new K/V rows, it appends them and
/// attends over everything cached.
class KvCache : public AttentionBackend {
 public:
  KvCache(const ModelConfig& config, int capacity);

  int length() const { return length_; }  ///< tokens cached (positions 0 .. length()-1)
  int capacity() const { return capacity_; }
  void clear() { length_ = 0; }

  /// Keys of layer l: [capacity, kv_dim], of which the first length() (+ the pending step's) rows are valid.
  const float* keys(int layer) const { return &k_[layer_offset(layer)]; }
  /// Values of layer l, laid out like keys().
  const float* values(int layer) const { return &v_[layer_offset(layer)]; }

  /// Writes n new rows of K and V ([n, kv_dim] each) for layer l at positions length() .. length()+n-1.
  /// Throws llm::Error when they do not fit in the capacity.
  void append(int layer, const float* k, const float* v, int n);

  void attend(int layer, const float* q, const float* k, const float* v, float* out, int n) override;
  void finish_step(int n) override { length_ += n; }

  /// Bytes one token occupies in the cache: 2 x layers x kv_dim x sizeof(float).
  static std::size_t bytes_per_token(const ModelConfig& c);
  std::size_t bytes_allocated() const { return static_cast<std::size_t>(capacity_) * bytes_per_token(config_); }
  std::size_t bytes_used() const { return static_cast<std::size_t>(length_) * bytes_per_token(config_); }

 private:
  std::size_t layer_offset(int layer) const {
    return static_cast<std::size_t>(layer) * static_cast<std::size_t>(capacity_) *
           static_cast<std::size_t>(config_.kv_dim());
  }

  ModelConfig config_;
  int capacity_;
  int length_ = 0;
  std::vector<float> k_, v_;  // [layers, capacity, kv_dim]
};

}  // namespace llm::stage01
