#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace llm::cpu {

namespace {

/// Offsets into the [batch, len, heads, head_dim] layouts.
std::size_t q_index(const AttentionShape& s, int b, int i, int h) {
  return ((static_cast<std::size_t>(b) * s.q_len + i) * s.n_heads + h) * s.head_dim;
}
std::size_t kv_index(const AttentionShape& s, int b, int j, int g) {
  return ((static_cast<std::size_t>(b) * s.kv_len + j) * s.n_kv_heads + g) * s.head_dim;
}
/// Number of keys query i may see.
int visible_keys(const AttentionShape& s, int i) { return s.causal ? s.kv_len - s.q_len + i + 1 : s.kv_len; }

}  // namespace

double AttentionShape::flops() const {
  const double full = 4.0 * batch * n_heads * static_cast<double>(q_len) * kv_len * head_dim;
  if (!causal) return full;
  // Query i sees kv_len - q_len + i + 1 keys: the visible share of the q_len x kv_len square.
  const double visible = static_cast<double>(q_len) * (kv_len - q_len) + q_len * (q_len + 1) / 2.0;
  return full * visible / (static_cast<double>(q_len) * kv_len);
}

void AttentionShape::validate() const {
  auto bad = [](const std::string& field, int value, const char* why) {
    throw std::invalid_argument("attention shape: " + field + " = " + std::to_string(value) + " " + why);
  };
  if (batch < 1) bad("batch", batch, "must be >= 1");
  if (q_len < 1) bad("q_len", q_len, "must be >= 1");
  if (kv_len < q_len) bad("kv_len", kv_len, "must be >= q_len (the queries are the last kv_len positions)");
  if (n_kv_heads < 1) bad("n_kv_heads", n_kv_heads, "must be >= 1");
  if (n_heads < 1 || n_heads % n_kv_heads != 0) bad("n_heads", n_heads, "must be a positive multiple of n_kv_heads");
  if (head_dim < 1) bad("head_dim", head_dim, "must be >= 1");
}

void attention_reference(float* out, const float* q, const float* k, const float* v, const AttentionShape& s) {
  s.validate();
  const int group = s.n_heads / s.n_kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.head_dim));
  std::vector<double> p(static_cast<std::size_t>(s.kv_len)), acc(static_cast<std::size_t>(s.head_dim));
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.n_heads; ++h)
      for (int i = 0; i < s.q_len; ++i) {
        const float* qi = q + q_index(s, b, i, h);
        const int n = visible_keys(s, i);
        double mx = -std::numeric_limits<double>::infinity();
        for (int j = 0; j < n; ++j) {
          const float* kj = k + kv_index(s, b, j, h / group);
          double dot = 0.0;
          for (int d = 0; d < s.head_dim; ++d) dot += static_cast<double>(qi[d]) * kj[d];
          p[static_cast<std::size_t>(j)] = dot * scale;
          mx = std::max(mx, p[static_cast<std::size_t>(j)]);
        }
        double sum = 0.0;
        for (int j = 0; j < n; ++j) sum += (p[static_cast<std::size_t>(j)] = std::exp(p[static_cast<std::size_t>(j)] - mx));
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int j = 0; j < n; ++j) {
          const float* vj = v + kv_index(s, b, j, h / group);
          for (int d = 0; d < s.head_dim; ++d) acc[static_cast<std::size_t>(d)] += p[static_cast<std::size_t>(j)] * vj[d];
        }
        float* oi = out + q_index(s, b, i, h);
        for (int d = 0; d < s.head_dim; ++d) oi[d] = static_cast<float>(acc[static_cast<std::size_t>(d)] / sum);
      }
}

void attention_online_softmax(float* out, const float* q, const float* k, const float* v, const AttentionShape& s,
                              int tile_kv) {
  s.validate();
  if (tile_kv < 1) throw std::invalid_argument("attention_online_softmax: tile_kv = " + std::to_string(tile_kv) + " must be >= 1");
  const int group = s.n_heads / s.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  std::vector<float> scores(static_cast<std::size_t>(tile_kv)), o(static_cast<std::size_t>(s.head_dim));
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.n_heads; ++h)
      for (int i = 0; i < s.q_len; ++i) {
        const float* qi = q + q_index(s, b, i, h);
        const int n = visible_keys(s, i);
        float m = -std::numeric_limits<float>::infinity();  // running max of the scores seen
        float l = 0.0f;                                      // running sum of exp(score - m)
        std::fill(o.begin(), o.end(), 0.0f);                 // running sum of exp(score - m) * v
        for (int t0 = 0; t0 < n; t0 += tile_kv) {
          const int t1 = std::min(n, t0 + tile_kv);
          // 1. The tile's scores and their max.
          float tile_max = -std::numeric_limits<float>::infinity();
          for (int j = t0; j < t1; ++j) {
            const float* kj = k + kv_index(s, b, j, h / group);
            float dot = 0.0f;
            for (int d = 0; d < s.head_dim; ++d) dot += qi[d] * kj[d];
            scores[static_cast<std::size_t>(j - t0)] = dot * scale;
            tile_max = std::max(tile_max, dot * scale);
          }
          // 2. A larger max shrinks everything accumulated so far by exp(m_old - m_new).
          const float m_new = std::max(m, tile_max);
          const float correction = std::exp(m - m_new);  // exp(-inf) = 0 on the first tile
          l *= correction;
          for (auto& x : o) x *= correction;
          // 3. Add the tile's probabilities (relative to m_new) and their values.
          for (int j = t0; j < t1; ++j) {
            const float p = std::exp(scores[static_cast<std::size_t>(j - t0)] - m_new);
            l += p;
            const float* vj = v + kv_index(s, b, j, h / group);
            for (int d = 0; d < s.head_dim; ++d) o[static_cast<std::size_t>(d)] += p * vj[d];
          }
          m = m_new;
        }
        float* oi = out + q_index(s, b, i, h);
        for (int d = 0; d < s.head_dim; ++d) oi[d] = o[static_cast<std::size_t>(d)] / l;
      }
}

void paged_decode_attention(float* out, const float* q, int batch, int n_heads, const PagedKvView& kv,
                            int num_splits) {
  auto bad = [](const std::string& field, long value, const char* why) {
    throw std::invalid_argument("paged_decode_attention: " + field + " = " + std::to_string(value) + " " + why);
  };
  if (batch < 1) bad("batch", batch, "must be >= 1");
  if (kv.n_kv_heads < 1 || n_heads % kv.n_kv_heads != 0) bad("n_heads", n_heads, "must be a multiple of n_kv_heads");
  if (kv.block_size < 1) bad("block_size", kv.block_size, "must be >= 1");
  if (num_splits < 1) bad("num_splits", num_splits, "must be >= 1");
  const int group = n_heads / kv.n_kv_heads, hd = kv.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const std::size_t token_stride = static_cast<std::size_t>(kv.n_kv_heads) * hd;
  // Position p of sequence b lives in slot p % block_size of block block_table[b][p / block_size].
  auto key_row = [&](const float* base, int b, int p, int g) {
    const int len = kv.seq_lens[b];
    if (p >= len) bad("position", p, "is past the sequence");
    const int blk = kv.block_table[static_cast<std::size_t>(b) * kv.max_blocks_per_seq + p / kv.block_size];
    if (blk < 0 || blk >= kv.num_blocks) bad("block_table entry", blk, "is not a block of the pool");
    return base + (static_cast<std::size_t>(blk) * kv.block_size + p % kv.block_size) * token_stride +
           static_cast<std::size_t>(g) * hd;
  };
  std::vector<float> o_split(static_cast<std::size_t>(num_splits) * hd), m_split(static_cast<std::size_t>(num_splits)),
      l_split(static_cast<std::size_t>(num_splits));
  for (int b = 0; b < batch; ++b) {
    const int len = kv.seq_lens[b];
    if (len < 1 || len > kv.max_blocks_per_seq * kv.block_size) bad("seq_lens[b]", len, "does not fit its block table");
    const int per_split = (len + num_splits - 1) / num_splits;
    for (int h = 0; h < n_heads; ++h) {
      const float* qh = q + (static_cast<std::size_t>(b) * n_heads + h) * hd;
      // Each split: plain softmax statistics over its own keys (a split may be empty).
      for (int sp = 0; sp < num_splits; ++sp) {
        const int p0 = std::min(len, sp * per_split), p1 = std::min(len, p0 + per_split);
        float m = -std::numeric_limits<float>::infinity(), l = 0.0f;
        float* o = o_split.data() + static_cast<std::size_t>(sp) * hd;
        std::fill(o, o + hd, 0.0f);
        for (int p = p0; p < p1; ++p) {
          const float* kp = key_row(kv.k, b, p, h / group);
          float dot = 0.0f;
          for (int d = 0; d < hd; ++d) dot += qh[d] * kp[d];
          m = std::max(m, dot * scale);
        }
        for (int p = p0; p < p1; ++p) {
          const float* kp = key_row(kv.k, b, p, h / group);
          const float* vp = key_row(kv.v, b, p, h / group);
          float dot = 0.0f;
          for (int d = 0; d < hd; ++d) dot += qh[d] * kp[d];
          const float e = std::exp(dot * scale - m);
          l += e;
          for (int d = 0; d < hd; ++d) o[d] += e * vp[d];
        }
        m_split[static_cast<std::size_t>(sp)] = m;
        l_split[static_cast<std::size_t>(sp)] = l;
      }
      // The merge: rescale every split to the global max; empty splits (l = 0) add nothing.
      float m = -std::numeric_limits<float>::infinity();
      for (int sp = 0; sp < num_splits; ++sp) m = std::max(m, m_split[static_cast<std::size_t>(sp)]);
      float l = 0.0f;
      float* oh = out + (static_cast<std::size_t>(b) * n_heads + h) * hd;
      std::fill(oh, oh + hd, 0.0f);
      for (int sp = 0; sp < num_splits; ++sp) {
        if (l_split[static_cast<std::size_t>(sp)] == 0.0f) continue;
        const float w = std::exp(m_split[static_cast<std::size_t>(sp)] - m);
        l += l_split[static_cast<std::size_t>(sp)] * w;
        for (int d = 0; d < hd; ++d) oh[d] += o_split[static_cast<std::size_t>(sp) * hd + d] * w;
      }
      for (int d = 0; d < hd; ++d) oh[d] /= l;
    }
  }
}

}  // namespace llm::cpu
