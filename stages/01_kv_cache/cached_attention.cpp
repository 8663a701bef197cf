#include "cached_attention.h"

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
  const std::ptrdiff_t q_stride = static_cast<std::ptrdiff_t>(n_heads) * head_dim;
  const std::ptrdiff_t kv_stride = static_cast<std::ptrdiff_t>(n_kv_heads) * head_dim;
  // Query i of head h: scores against keys 0 .. start + i (the cache plus this step's rows up to i).
  auto attend_one = [&](int i, int h, float* scores) {
    const float* qi = q + i * q_stride + h * head_dim;
    const std::ptrdiff_t kv_offset = static_cast<std::ptrdiff_t>(h / group) * head_dim;
    const int seen = start + i + 1;
    for (int j = 0; j < seen; ++j) scores[j] = cpu::dot(qi, k + j * kv_stride + kv_offset, head_dim) * scale;
    cpu::softmax(scores, seen);
    float* oi = out + i * q_stride + h * head_dim;
    for (int d = 0; d < head_dim; ++d) oi[d] = 0.0f;
    for (int j = 0; j < seen; ++j) {
      const float* vj = v + j * kv_stride + kv_offset;
      for (int d = 0; d < head_dim; ++d) oi[d] += scores[j] * vj[d];
    }
  };
  // Every (query, head) pair is independent: share them out among the CPU cores. Pair p is query
  // p / n_heads of head p % n_heads and costs about 2 * (start + n) * head_dim multiply-adds.
  const std::int64_t per_pair = 2 * std::int64_t{start + n} * head_dim;
  cpu::parallel_for(std::int64_t{n} * n_heads, cpu::grain_for(per_pair, cpu::kMinChunkWork),
                    [&](std::int64_t p0, std::int64_t p1) {
                      std::vector<float> scores(static_cast<std::size_t>(start + n));
                      for (std::int64_t p = p0; p < p1; ++p)
                        attend_one(static_cast<int>(p / n_heads), static_cast<int>(p % n_heads), scores.data());
                    });
  // END EXERCISE
}

}  // namespace llm::stage01
