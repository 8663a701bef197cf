#include "shard_weights.h"

#include <cstddef>

namespace llm::stage07 {

namespace {

/// Rows [begin, begin + count) of a row-major [rows, cols] matrix.
std::vector<float> rows_of(const std::vector<float>& m, int cols, int begin, int count) {
  const auto c = static_cast<std::size_t>(cols);
  return {m.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(begin) * c),
          m.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(begin + count) * c)};
}

/// Columns [begin, begin + count) of a row-major [rows, cols] matrix.
std::vector<float> columns_of(const std::vector<float>& m, int rows, int cols, int begin, int count) {
  std::vector<float> out;
  out.reserve(static_cast<std::size_t>(rows) * static_cast<std::size_t>(count));
  // BEGIN EXERCISE(tp-row-slice): append columns [begin, begin + count) of every row
  for (int r = 0; r < rows; ++r) {
    const auto at = static_cast<std::size_t>(r) * static_cast<std::size_t>(cols) + static_cast<std::size_t>(begin);
    out.insert(out.end(), m.begin() + static_cast<std::ptrdiff_t>(at),
               m.begin() + static_cast<std::ptrdiff_t>(at + static_cast<std::size_t>(count)));
  }
  // END EXERCISE
  return out;
}

}  // namespace

ModelWeights shard_weights(const ModelWeights& w, const RankShard& s) {
  const ModelConfig& c = w.config;
  ModelWeights out;
  out.config = c;
  out.config.n_heads = s.n_heads;
  out.config.n_kv_heads = static_cast<int>(s.kv_heads.size());
  out.config.hidden_dim = s.hidden;
  out.token_embd = w.token_embd;
  out.output_norm = w.output_norm;  // out.output stays empty: the classifier is shard_classifier's
  const int hd = c.head_dim;
  for (const LayerWeights& L : w.layers) {
    LayerWeights o;
    o.attn_norm = L.attn_norm;
    o.ffn_norm = L.ffn_norm;
    o.wq = rows_of(L.wq, c.dim, s.head_begin * hd, s.n_heads * hd);
    for (int g : s.kv_heads) {
      const auto k = rows_of(L.wk, c.dim, g * hd, hd), v = rows_of(L.wv, c.dim, g * hd, hd);
      o.wk.insert(o.wk.end(), k.begin(), k.end());
      o.wv.insert(o.wv.end(), v.begin(), v.end());
    }
    o.wo = columns_of(L.wo, c.dim, c.q_dim(), s.head_begin * hd, s.n_heads * hd);
    o.w_gate = rows_of(L.w_gate, c.dim, s.hidden_begin, s.hidden);
    o.w_up = rows_of(L.w_up, c.dim, s.hidden_begin, s.hidden);
    o.w_down = columns_of(L.w_down, c.dim, c.hidden_dim, s.hidden_begin, s.hidden);
    out.layers.push_back(std::move(o));
  }
  return out;
}

ModelWeights shard_classifier(const ModelWeights& w, const RankShard& s) {
  ModelWeights out;
  out.config = w.config;
  out.config.n_layers = 0;
  out.config.vocab_size = s.vocab;
  out.token_embd = rows_of(w.output.empty() ? w.token_embd : w.output, w.config.dim, s.vocab_begin, s.vocab);
  out.output_norm = w.output_norm;
  return out;
}

}  // namespace llm::stage07
