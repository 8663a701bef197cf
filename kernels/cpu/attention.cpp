#include "kernels/cpu/attention.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>
#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "kernels/cpu/fp8.h"
#include "kernels/cpu/half.h"
#include "kernels/cpu/ops.h"

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

// ---- Attention over a cache stored as codes (stage 05's --kv-cache) ----

std::size_t kv_code_bytes(KvCodeType t) {
  switch (t) {
    case KvCodeType::f32: return 4;
    case KvCodeType::f16: return 2;
    case KvCodeType::int8:
    case KvCodeType::fp8_e4m3: return 1;
  }
  return 0;
}

bool kv_code_has_scale(KvCodeType t) { return t == KvCodeType::int8 || t == KvCodeType::fp8_e4m3; }

const char* kv_code_name(KvCodeType t) {
  switch (t) {
    case KvCodeType::f32: return "f32";
    case KvCodeType::f16: return "f16";
    case KvCodeType::int8: return "int8";
    case KvCodeType::fp8_e4m3: return "fp8_e4m3";
  }
  return "?";
}

namespace {

[[noreturn]] void bad_quant_arg(const char* fn, const std::string& field, long value, const char* why) {
  throw std::invalid_argument(std::string(fn) + ": " + field + " = " + std::to_string(value) + " " + why);
}

void check_quant_view(const char* fn, const QuantPagedKvView& kv, int n_heads) {
  if (kv.n_kv_heads < 1) bad_quant_arg(fn, "n_kv_heads", kv.n_kv_heads, "must be >= 1");
  if (n_heads < 1 || n_heads % kv.n_kv_heads != 0) bad_quant_arg(fn, "n_heads", n_heads, "must be a multiple of n_kv_heads");
  if (kv.block_size < 1) bad_quant_arg(fn, "block_size", kv.block_size, "must be >= 1");
  if (kv.head_dim < 1) bad_quant_arg(fn, "head_dim", kv.head_dim, "must be >= 1");
  if (kv.num_blocks < 1) bad_quant_arg(fn, "num_blocks", kv.num_blocks, "must be >= 1");
  if (kv.k_codes == nullptr || kv.v_codes == nullptr || kv.block_table == nullptr || kv.seq_lens == nullptr)
    bad_quant_arg(fn, "k_codes/v_codes/block_table/seq_lens null pointers", 0, "are not allowed");
  if (kv_code_has_scale(kv.type) && (kv.k_scales == nullptr || kv.v_scales == nullptr))
    bad_quant_arg(fn, "k_scales/v_scales null pointers", 0, "are not allowed for int8 and fp8_e4m3");
}

/// The 256 E4M3 values, so that decoding a code is one load.
const std::array<float, 256>& e4m3_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int c = 0; c < 256; ++c) t[static_cast<std::size_t>(c)] = fp8_to_fp32(static_cast<std::uint8_t>(c), Fp8Format::E4M3);
    return t;
  }();
  return table;
}

/// Reads (slot, KV head) rows of one plane (K or V) of a QuantPagedKvView as floats.
class CodeRows {
 public:
  CodeRows(const QuantPagedKvView& kv, const void* codes, const float* scales)
      : kv_(kv), codes_(codes), scales_(scales), e4m3_(e4m3_table()) {}
  /// The row's codes decoded, unscaled, into dst[head_dim] (f32: the row itself, not copied);
  /// *scale = its scale (1 for f32 and f16).
  const float* decode(float* dst, std::size_t slot, int g, float* scale) const {
    const std::size_t row = slot * static_cast<std::size_t>(kv_.n_kv_heads) + static_cast<std::size_t>(g);
    const std::size_t at = row * static_cast<std::size_t>(kv_.head_dim);
    const int hd = kv_.head_dim;
    *scale = 1.0f;
    switch (kv_.type) {
      case KvCodeType::f32: return static_cast<const float*>(codes_) + at;
      case KvCodeType::f16: {
        const std::uint16_t* h = static_cast<const std::uint16_t*>(codes_) + at;
        int d = 0;
#if defined(__F16C__)
        // The CPU's own conversion, 8 at a time (exact, as half_to_float): the scalar bit
        // manipulation made fp16 decode attention 1.3x slower than reading floats.
        for (; d + 8 <= hd; d += 8)
          _mm256_storeu_ps(dst + d, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + d))));
#endif
        for (; d < hd; ++d) dst[d] = half_to_float(h[d]);
        return dst;
      }
      case KvCodeType::int8: {
        const std::int8_t* c = static_cast<const std::int8_t*>(codes_) + at;
        for (int d = 0; d < hd; ++d) dst[d] = static_cast<float>(c[d]);
        *scale = scales_[row];
        return dst;
      }
      case KvCodeType::fp8_e4m3: {
        const std::uint8_t* c = static_cast<const std::uint8_t*>(codes_) + at;
        for (int d = 0; d < hd; ++d) dst[d] = e4m3_[c[d]];
        *scale = scales_[row];
        return dst;
      }
    }
    return dst;
  }

 private:
  const QuantPagedKvView& kv_;
  const void* codes_;
  const float* scales_;
  const std::array<float, 256>& e4m3_;
};

/// The slot of position p of sequence b, checked against the pool.
std::size_t quant_slot(const char* fn, const QuantPagedKvView& kv, int b, int p) {
  const int blk = kv.block_table[static_cast<std::size_t>(b) * kv.max_blocks_per_seq + p / kv.block_size];
  if (blk < 0 || blk >= kv.num_blocks) bad_quant_arg(fn, "block_table entry", blk, "is not a block of the pool");
  return static_cast<std::size_t>(blk) * kv.block_size + p % kv.block_size;
}

/// q . k of one row: f32/f16 sum in one chain, exactly as paged_decode_attention and
/// attention_online_softmax do (their results are the reference stage 04 is held to bit for
/// bit); int8/fp8 in cpu::dot's 16 lanes, times the row's scale.
inline float quant_dot(bool exact, const float* q, const float* k, float k_scale, int hd) {
  if (exact) {
    float dot = 0.0f;
    for (int d = 0; d < hd; ++d) dot += q[d] * k[d];
    return dot;
  }
  return k_scale * dot(q, k, hd);
}

/// Keys whose exact dots paged_decode_attention_quant sums side by side.
constexpr int kDotRows = 8;

/// out[t] = q . k[t] for kDotRows keys, each summed in one chain over d exactly as quant_dot's
/// exact branch: the same operations in the same order per key, interleaved across keys.
inline void exact_dots(const float* q, const float* const* k, int hd, float* out) {
  float s[kDotRows] = {};
  for (int d = 0; d < hd; ++d)
    for (int t = 0; t < kDotRows; ++t) s[t] += q[d] * k[t][d];
  for (int t = 0; t < kDotRows; ++t) out[t] = s[t];
}

}  // namespace

void paged_decode_attention_quant(float* out, const float* q, int batch, int n_heads, const QuantPagedKvView& kv,
                                  int num_splits) {
  const char* fn = "paged_decode_attention_quant";
  if (batch < 1) bad_quant_arg(fn, "batch", batch, "must be >= 1");
  if (num_splits < 1) bad_quant_arg(fn, "num_splits", num_splits, "must be >= 1");
  check_quant_view(fn, kv, n_heads);
  const int group = n_heads / kv.n_kv_heads, hd = kv.head_dim;
  const auto uhd = static_cast<std::size_t>(hd);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const bool exact = !kv_code_has_scale(kv.type);
  const CodeRows K(kv, kv.k_codes, kv.k_scales), V(kv, kv.v_codes, kv.v_scales);
  std::vector<float> kbuf(kDotRows * uhd), vbuf(uhd), dots;
  // Per split and query head of the group: (m, l, unnormalised o), as in paged_decode_attention.
  const auto parts = static_cast<std::size_t>(num_splits) * static_cast<std::size_t>(group);
  std::vector<float> o_split(parts * uhd), m_split(parts), l_split(parts);
  for (int b = 0; b < batch; ++b) {
    const int len = kv.seq_lens[b];
    if (len < 1 || len > kv.max_blocks_per_seq * kv.block_size) bad_quant_arg(fn, "seq_lens[b]", len, "does not fit its block table");
    const int per_split = (len + num_splits - 1) / num_splits;
    dots.resize(static_cast<std::size_t>(group) * static_cast<std::size_t>(per_split));
    // One KV head at a time: each token's codes are decoded once for the group's query heads.
    for (int g = 0; g < kv.n_kv_heads; ++g) {
      const float* qg = q + (static_cast<std::size_t>(b) * n_heads + static_cast<std::size_t>(g) * group) * uhd;
      for (int sp = 0; sp < num_splits; ++sp) {
        const int p0 = std::min(len, sp * per_split), p1 = std::min(len, p0 + per_split);
        // Pass 1: the raw dots and each head's max score. f32/f16: kDotRows keys at a time, their
        // dots summed side by side (each still one chain in d, the same bits as one at a time;
        // one chain alone waits on every add's latency).
        int pk = p0;
        if (exact) {
          for (; pk + kDotRows <= p1; pk += kDotRows) {
            const float* kr[kDotRows];
            float k_scale;
            for (int t = 0; t < kDotRows; ++t)
              kr[t] = K.decode(&kbuf[static_cast<std::size_t>(t) * uhd], quant_slot(fn, kv, b, pk + t), g, &k_scale);
            for (int j = 0; j < group; ++j)
              exact_dots(qg + j * uhd, kr, hd, &dots[static_cast<std::size_t>(j) * per_split + (pk - p0)]);
          }
        }
        for (; pk < p1; ++pk) {
          float k_scale;
          const float* kr = K.decode(kbuf.data(), quant_slot(fn, kv, b, pk), g, &k_scale);
          for (int j = 0; j < group; ++j)
            dots[static_cast<std::size_t>(j) * per_split + (pk - p0)] = quant_dot(exact, qg + j * uhd, kr, k_scale, hd);
        }
        for (int j = 0; j < group; ++j) {
          const std::size_t part = static_cast<std::size_t>(sp) * group + j;
          float m = -std::numeric_limits<float>::infinity();
          for (int p = p0; p < p1; ++p) m = std::max(m, dots[static_cast<std::size_t>(j) * per_split + (p - p0)] * scale);
          m_split[part] = m;
          l_split[part] = 0.0f;
          std::fill_n(&o_split[part * uhd], uhd, 0.0f);
        }
        // Pass 2: the probabilities times the values (the scale of V folded into the weight).
        for (int p = p0; p < p1; ++p) {
          float v_scale;
          const float* vr = V.decode(vbuf.data(), quant_slot(fn, kv, b, p), g, &v_scale);
          for (int j = 0; j < group; ++j) {
            const std::size_t part = static_cast<std::size_t>(sp) * group + j;
            const float dot = dots[static_cast<std::size_t>(j) * per_split + (p - p0)];
            const float e = std::exp(dot * scale - m_split[part]);
            l_split[part] += e;
            const float w = exact ? e : e * v_scale;
            float* o = &o_split[part * uhd];
            for (int d = 0; d < hd; ++d) o[d] += w * vr[d];
          }
        }
      }
      // The merge of paged_decode_attention, per query head; empty splits add nothing.
      for (int j = 0; j < group; ++j) {
        float m = -std::numeric_limits<float>::infinity();
        for (int sp = 0; sp < num_splits; ++sp) m = std::max(m, m_split[static_cast<std::size_t>(sp) * group + j]);
        float l = 0.0f;
        float* oh = out + (static_cast<std::size_t>(b) * n_heads + static_cast<std::size_t>(g) * group + j) * uhd;
        std::fill(oh, oh + hd, 0.0f);
        for (int sp = 0; sp < num_splits; ++sp) {
          const std::size_t part = static_cast<std::size_t>(sp) * group + j;
          if (l_split[part] == 0.0f) continue;
          const float w = std::exp(m_split[part] - m);
          l += l_split[part] * w;
          for (int d = 0; d < hd; ++d) oh[d] += o_split[part * uhd + d] * w;
        }
        for (int d = 0; d < hd; ++d) oh[d] /= l;
      }
    }
  }
}

void paged_prefill_attention_quant(float* out, const float* q, int q_len, int n_heads, int seq,
                                   const QuantPagedKvView& kv, int tile_kv) {
  const char* fn = "paged_prefill_attention_quant";
  if (q_len < 1) bad_quant_arg(fn, "q_len", q_len, "must be >= 1");
  if (tile_kv < 1) bad_quant_arg(fn, "tile_kv", tile_kv, "must be >= 1");
  if (seq < 0) bad_quant_arg(fn, "seq", seq, "must be >= 0");
  check_quant_view(fn, kv, n_heads);
  const int kv_len = kv.seq_lens[seq];
  if (kv_len < q_len || kv_len > kv.max_blocks_per_seq * kv.block_size)
    bad_quant_arg(fn, "seq_lens[seq]", kv_len, "must be >= q_len and fit its block table");
  const int group = n_heads / kv.n_kv_heads, hd = kv.head_dim;
  const auto uhd = static_cast<std::size_t>(hd);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const bool exact = !kv_code_has_scale(kv.type);
  const CodeRows K(kv, kv.k_codes, kv.k_scales), V(kv, kv.v_codes, kv.v_scales);
  const auto tile = static_cast<std::size_t>(tile_kv);
  // The tile's decoded rows of one KV head (pointers: f32 rows are read in place) and scales.
  std::vector<float> kbuf(tile * uhd), vbuf(tile * uhd), k_scale(tile), v_scale(tile), scores(tile);
  std::vector<const float*> krow(tile), vrow(tile);
  // Running (m, l, o) of every (query head of the group, query) pair.
  const std::size_t states = static_cast<std::size_t>(group) * static_cast<std::size_t>(q_len);
  std::vector<float> m(states), l(states), o(states * uhd);
  for (int g = 0; g < kv.n_kv_heads; ++g) {
    std::fill(m.begin(), m.end(), -std::numeric_limits<float>::infinity());
    std::fill(l.begin(), l.end(), 0.0f);
    std::fill(o.begin(), o.end(), 0.0f);
    for (int t0 = 0; t0 < kv_len; t0 += tile_kv) {
      const int t1 = std::min(kv_len, t0 + tile_kv);
      for (int p = t0; p < t1; ++p) {
        const auto r = static_cast<std::size_t>(p - t0);
        const std::size_t slot = quant_slot(fn, kv, seq, p);
        krow[r] = K.decode(&kbuf[r * uhd], slot, g, &k_scale[r]);
        vrow[r] = V.decode(&vbuf[r * uhd], slot, g, &v_scale[r]);
      }
      for (int j = 0; j < group; ++j)
        for (int i = 0; i < q_len; ++i) {
          // attention_online_softmax's steps for query i, over the part of the tile it sees.
          const int n = kv_len - q_len + i + 1;
          if (t0 >= n) continue;
          const int t1i = std::min(n, t1);
          const std::size_t st = static_cast<std::size_t>(j) * q_len + i;
          const float* qi = q + (static_cast<std::size_t>(i) * n_heads + static_cast<std::size_t>(g) * group + j) * uhd;
          float tile_max = -std::numeric_limits<float>::infinity();
          for (int p = t0; p < t1i; ++p) {
            const auto r = static_cast<std::size_t>(p - t0);
            const float dot = quant_dot(exact, qi, krow[r], k_scale[r], hd);
            scores[r] = dot * scale;
            tile_max = std::max(tile_max, dot * scale);
          }
          const float m_new = std::max(m[st], tile_max);
          const float correction = std::exp(m[st] - m_new);
          l[st] *= correction;
          float* os = &o[st * uhd];
          for (int d = 0; d < hd; ++d) os[d] *= correction;
          for (int p = t0; p < t1i; ++p) {
            const auto r = static_cast<std::size_t>(p - t0);
            const float pr = std::exp(scores[r] - m_new);
            l[st] += pr;
            const float w = exact ? pr : pr * v_scale[r];
            for (int d = 0; d < hd; ++d) os[d] += w * vrow[r][d];
          }
          m[st] = m_new;
        }
    }
    for (int j = 0; j < group; ++j)
      for (int i = 0; i < q_len; ++i) {
        const std::size_t st = static_cast<std::size_t>(j) * q_len + i;
        float* oi = out + (static_cast<std::size_t>(i) * n_heads + static_cast<std::size_t>(g) * group + j) * uhd;
        for (int d = 0; d < hd; ++d) oi[d] = o[st * uhd + d] / l[st];
      }
  }
}

}  // namespace llm::cpu
