#include "common/forward.h"

#include <cstring>
#include <string>

#include "common/error.h"
#include "kernels/cpu/ops.h"

namespace llm {

namespace {

void grow(std::vector<float>& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
}

}  // namespace

std::vector<float> forward_tokens(const ModelWeights& w, std::span<const int> tokens, std::span<const int> positions,
                                  std::span<const int> logit_rows, AttentionBackend& attention,
                                  ForwardScratch& s) {
  const ModelConfig& c = w.config;
  const int n = static_cast<int>(tokens.size());
  if (n == 0) throw Error("forward: no tokens");
  if (positions.size() != tokens.size()) throw Error("forward: tokens and positions differ in length");
  const auto N = static_cast<std::size_t>(n);
  const auto dim = static_cast<std::size_t>(c.dim), qd = static_cast<std::size_t>(c.q_dim()),
             kvd = static_cast<std::size_t>(c.kv_dim()), hid = static_cast<std::size_t>(c.hidden_dim);
  grow(s.x, N * dim);
  grow(s.h, N * dim);
  grow(s.proj, N * dim);
  grow(s.q, N * qd);
  grow(s.att, N * qd);
  grow(s.k, N * kvd);
  grow(s.v, N * kvd);
  grow(s.gate, N * hid);
  grow(s.up, N * hid);

  for (std::size_t t = 0; t < N; ++t) {
    const int id = tokens[t], pos = positions[t];
    if (id < 0 || id >= c.vocab_size)
      throw Error("forward: token id " + std::to_string(id) + " is outside the vocabulary of " +
                  std::to_string(c.vocab_size));
    if (pos < 0 || pos >= c.context_length)
      throw Error("forward: position " + std::to_string(pos) + " is outside the context of " +
                  std::to_string(c.context_length));
    std::memcpy(&s.x[t * dim], &w.token_embd[static_cast<std::size_t>(id) * dim], sizeof(float) * dim);
  }

  float* x = s.x.data();
  for (std::size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& L = w.layers[l];
    cpu::rmsnorm(s.h.data(), x, L.attn_norm.data(), n, c.dim, c.norm_eps);
    cpu::matmul(s.q.data(), s.h.data(), L.wq.data(), n, c.dim, c.q_dim());
    cpu::matmul(s.k.data(), s.h.data(), L.wk.data(), n, c.dim, c.kv_dim());
    cpu::matmul(s.v.data(), s.h.data(), L.wv.data(), n, c.dim, c.kv_dim());
    for (std::size_t t = 0; t < N; ++t) {
      cpu::rope(&s.q[t * qd], c.n_heads, c.head_dim, positions[t], c.rope_theta);
      cpu::rope(&s.k[t * kvd], c.n_kv_heads, c.head_dim, positions[t], c.rope_theta);
    }
    attention.attend(static_cast<int>(l), s.q.data(), s.k.data(), s.v.data(), s.att.data(), n);
    cpu::matmul(s.proj.data(), s.att.data(), L.wo.data(), n, c.q_dim(), c.dim);
    for (std::size_t i = 0; i < N * dim; ++i) x[i] += s.proj[i];

    cpu::rmsnorm(s.h.data(), x, L.ffn_norm.data(), n, c.dim, c.norm_eps);
    cpu::matmul(s.gate.data(), s.h.data(), L.w_gate.data(), n, c.dim, c.hidden_dim);
    cpu::matmul(s.up.data(), s.h.data(), L.w_up.data(), n, c.dim, c.hidden_dim);
    cpu::swiglu(s.gate.data(), s.gate.data(), s.up.data(), N * hid);
    cpu::matmul(s.proj.data(), s.gate.data(), L.w_down.data(), n, c.hidden_dim, c.dim);
    for (std::size_t i = 0; i < N * dim; ++i) x[i] += s.proj[i];
  }
  attention.finish_step(n);

  // Only the rows that will be sampled go through the (large) classifier.
  const auto rows = logit_rows.size();
  for (std::size_t r = 0; r < rows; ++r) {
    const int row = logit_rows[r];
    if (row < 0 || row >= n) throw Error("forward: logit row " + std::to_string(row) + " is not one of the tokens");
    std::memcpy(&s.proj[r * dim], x + static_cast<std::size_t>(row) * dim, sizeof(float) * dim);
  }
  std::vector<float> logits(rows * static_cast<std::size_t>(c.vocab_size));
  if (rows == 0) return logits;
  const int nr = static_cast<int>(rows);
  cpu::rmsnorm(s.h.data(), s.proj.data(), w.output_norm.data(), nr, c.dim, c.norm_eps);
  cpu::matmul(logits.data(), s.h.data(), w.classifier(), nr, c.dim, c.vocab_size);
  return logits;
}

double weight_bytes_per_step(const ModelWeights& w) {
  const ModelConfig& c = w.config;
  double floats = 0.0;
  for (const LayerWeights& L : w.layers) {
    floats += static_cast<double>(L.attn_norm.size() + L.wq.size() + L.wk.size() + L.wv.size() + L.wo.size() +
                                  L.ffn_norm.size() + L.w_gate.size() + L.w_up.size() + L.w_down.size());
  }
  floats += static_cast<double>(w.output_norm.size()) + static_cast<double>(c.vocab_size) * c.dim;  // classifier
  return floats * sizeof(float);
}

}  // namespace llm
