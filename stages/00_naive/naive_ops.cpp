// naive_ops.cpp: RMSNorm, RoPE, attention and SwiGLU as plain loops. Each is an exercise:
// `scripts/make_student_tree` (see docs/INSTRUCTORS.md) blanks the marked regions.
#include "naive_ops.h"

#include <cmath>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/parallel.h"

namespace llm::stage00 {

void rmsnorm(float* y, const float* x, const float* weight, int n, int dim, float eps) {
  // BEGIN EXERCISE(rmsnorm): normalise each row by its root-mean-square, then scale by weight
  for (int r = 0; r < n; ++r) {
    const float* xr = x + static_cast<long>(r) * dim;
    float* yr = y + static_cast<long>(r) * dim;
    double sum_sq = 0.0;  // double: a long row of fp32 squares loses digits otherwise
    for (int i = 0; i < dim; ++i) sum_sq += static_cast<double>(xr[i]) * xr[i];
    const float inv_rms = static_cast<float>(1.0 / std::sqrt(sum_sq / dim + eps));
    for (int i = 0; i < dim; ++i) yr[i] = xr[i] * inv_rms * weight[i];
  }
  // END EXERCISE
}

void rope(float* x, int n, int n_heads, int head_dim, float theta) {
  // BEGIN EXERCISE(rope): rotate each (even, odd) pair of every head by its position's angle
  for (int t = 0; t < n; ++t) {
    for (int i = 0; i < head_dim / 2; ++i) {
      // Low pairs turn fast (frequency 1), high pairs slowly (frequency ~1/theta).
      const double angle = t * std::pow(static_cast<double>(theta), -2.0 * i / head_dim);
      const float c = static_cast<float>(std::cos(angle)), s = static_cast<float>(std::sin(angle));
      for (int h = 0; h < n_heads; ++h) {
        float* v = x + (static_cast<long>(t) * n_heads + h) * head_dim;
        const float a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = a * c - b * s;
        v[2 * i + 1] = a * s + b * c;
      }
    }
  }
  // END EXERCISE
}

void causal_attention(float* out, const float* q, const float* k, const float* v, int n, int n_heads, int n_kv_heads,
                      int head_dim) {
  // BEGIN EXERCISE(causal-attention): scores = q.k / sqrt(head_dim) over keys 0..i, softmax, weighted sum of v
  const int group = n_heads / n_kv_heads;  // query heads that share one kv head
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  // Heads are independent of each other: share them out among the CPU cores (kernels/cpu/parallel.h:
  // the body runs for heads h0 .. h1-1; a head costs about n^2 * head_dim multiply-adds).
  const std::int64_t per_head = std::int64_t{n} * n * head_dim;
  cpu::parallel_for(n_heads, cpu::grain_for(per_head, cpu::kMinChunkWork), [&](std::int64_t h0, std::int64_t h1) {
    for (auto h = static_cast<int>(h0); h < h1; ++h) {
      const int kvh = h / group;
      std::vector<float> scores(static_cast<std::size_t>(n));
      for (int i = 0; i < n; ++i) {
        const float* qi = q + (static_cast<long>(i) * n_heads + h) * head_dim;
        // Scores against every key up to and including this token (the causal mask).
        float max_score = -INFINITY;
        for (int j = 0; j <= i; ++j) {
          const float* kj = k + (static_cast<long>(j) * n_kv_heads + kvh) * head_dim;
          float dot = 0.0f;
          for (int d = 0; d < head_dim; ++d) dot += qi[d] * kj[d];
          scores[static_cast<std::size_t>(j)] = dot * scale;
          max_score = std::max(max_score, scores[static_cast<std::size_t>(j)]);
        }
        // Softmax; subtracting the max keeps exp() from overflowing.
        float sum = 0.0f;
        for (int j = 0; j <= i; ++j) {
          scores[static_cast<std::size_t>(j)] = std::exp(scores[static_cast<std::size_t>(j)] - max_score);
          sum += scores[static_cast<std::size_t>(j)];
        }
        float* oi = out + (static_cast<long>(i) * n_heads + h) * head_dim;
        for (int d = 0; d < head_dim; ++d) oi[d] = 0.0f;
        for (int j = 0; j <= i; ++j) {
          const float p = scores[static_cast<std::size_t>(j)] / sum;
          const float* vj = v + (static_cast<long>(j) * n_kv_heads + kvh) * head_dim;
          for (int d = 0; d < head_dim; ++d) oi[d] += p * vj[d];
        }
      }
    }
  });
  // END EXERCISE
}

void swiglu(float* out, const float* gate, const float* up, long size) {
  // BEGIN EXERCISE(swiglu): out = silu(gate) * up, silu(g) = g * sigmoid(g)
  for (long i = 0; i < size; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
  // END EXERCISE
}

}  // namespace llm::stage00
