#include "cached_attention.h"

#include <cmath>
#include <cstddef>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/ops.h"

namespace llm::stage01 {

void cached_attention(float* out, const float* q, const float* k, const float* v, int n, int start, int n_heads,
                      int n_kv_heads, int head_dim) {
  // BEGIN EXERCISE(cached-attention): each new query attends over every cached key up to its own position
  const int group = n_heads / n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const std::ptrdiff_t q_stride = static_cast<std::ptrdiff_t>(n_heads) * head_dim;
  const std::ptrdiff_t kv_stride = static_cast<std::ptrdiff_t>(n_kv_heads) * head_dim;
#pragma omp parallel
  {
    std::vector<float> scores(static_cast<std::size_t>(start + n));
#pragma omp for collapse(2) schedule(static)
    for (int i = 0; i < n; ++i) {
      for (int h = 0; h < n_heads; ++h) {
        const float* qi = q + i * q_stride + h * head_dim;
        const std::ptrdiff_t kv_offset = static_cast<std::ptrdiff_t>(h / group) * head_dim;
        const int seen = start + i + 1;  // keys 0 .. start + i: the cache plus this step's rows up to i
        for (int j = 0; j < seen; ++j) {
          const float* kj = k + j * kv_stride + kv_offset;
          float dot = 0.0f;
          for (int d = 0; d < head_dim; ++d) dot += qi[d] * kj[d];
          scores[static_cast<std::size_t>(j)] = dot * scale;
        }
        cpu::softmax(scores.data(), seen);
        float* oi = out + i * q_stride + h * head_dim;
        for (int d = 0; d < head_dim; ++d) oi[d] = 0.0f;
        for (int j = 0; j < seen; ++j) {
          const float p = scores[static_cast<std::size_t>(j)];
          const float* vj = v + j * kv_stride + kv_offset;
          for (int d = 0; d < head_dim; ++d) oi[d] += p * vj[d];
        }
      }
    }
  }
  // END EXERCISE
}

}  // namespace llm::stage01
