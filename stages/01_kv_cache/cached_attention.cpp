#include "cached_attention.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/parallel.h"

namespace llm::stage01 {

void cached_attention(float* out, const float* q, const float* k, const float* v, int n, int start, int n_heads,
                      int n_kv_heads, int head_dim) {
  // BEGIN EXERCISE(cached-attention): each new query attends over every cached key up to its own position
  const int group = n_heads / n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const auto hd = static_cast<std::size_t>(head_dim);
  const std::size_t q_stride = static_cast<std::size_t>(n_heads) * hd,
                    kv_stride = static_cast<std::size_t>(n_kv_heads) * hd;
  constexpr std::size_t kAhead = 6;  // rows requested ahead of use (cpu::prefetch)
  // Query i (every head): scores against keys 0 .. start + i (the cache plus this step's rows up to
  // i). Key by key, all heads at once, so each key and value row is read once, rows in order.
  // scores: [n_heads, seen].
  auto attend_one = [&](std::size_t i, float* scores) {
    const float* qi = q + i * q_stride;
    float* oi = out + i * q_stride;
    const std::size_t seen = static_cast<std::size_t>(start) + i + 1;
    for (std::size_t j = 0; j < seen; ++j) {
      if (j + kAhead < seen) cpu::prefetch(k + (j + kAhead) * kv_stride, kv_stride);
      const float* kj = k + j * kv_stride;
      for (int h = 0; h < n_heads; ++h)
        scores[static_cast<std::size_t>(h) * seen + j] =
            cpu::dot(qi + static_cast<std::size_t>(h) * hd, kj + static_cast<std::size_t>(h / group) * hd, head_dim) *
            scale;
    }
    for (int h = 0; h < n_heads; ++h) cpu::softmax(scores + static_cast<std::size_t>(h) * seen, static_cast<int>(seen));
    std::fill(oi, oi + q_stride, 0.0f);
    for (std::size_t j = 0; j < seen; ++j) {
      if (j + kAhead < seen) cpu::prefetch(v + (j + kAhead) * kv_stride, kv_stride);
      const float* vj = v + j * kv_stride;
      for (int h = 0; h < n_heads; ++h) {
        const float p = scores[static_cast<std::size_t>(h) * seen + j];
        const float* vh = vj + static_cast<std::size_t>(h / group) * hd;
        float* oh = oi + static_cast<std::size_t>(h) * hd;
        for (std::size_t d = 0; d < hd; ++d) oh[d] += p * vh[d];
      }
    }
  };
  // Every query is independent: share them out among the CPU cores. Query i costs about
  // 2 * (start + i + 1) * n_heads * head_dim multiply-adds.
  const std::int64_t per_query = 2 * std::int64_t{start + n} * n_heads * head_dim;
  cpu::parallel_for(n, cpu::grain_for(per_query, cpu::kMinChunkWork), [&](std::int64_t i0, std::int64_t i1) {
    std::vector<float> scores(static_cast<std::size_t>(n_heads) * static_cast<std::size_t>(start + n));
    for (std::int64_t i = i0; i < i1; ++i) attend_one(static_cast<std::size_t>(i), scores.data());
  });
  // END EXERCISE
}

}  // namespace llm::stage01
