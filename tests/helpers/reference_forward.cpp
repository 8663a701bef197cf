#include "tests/helpers/reference_forward.h"

#include <cstring>

#include "kernels/cpu/ops.h"

namespace llm::test {

std::vector<float> reference_logits(const ModelWeights& w, const std::vector<int>& tokens) {
  const ModelConfig& c = w.config;
  const int n = static_cast<int>(tokens.size());
  const auto N = static_cast<std::size_t>(n);
  std::vector<float> x(N * static_cast<std::size_t>(c.dim)), h(x.size()), proj(x.size());
  std::vector<float> q(N * static_cast<std::size_t>(c.q_dim())), att(q.size());
  std::vector<float> k(N * static_cast<std::size_t>(c.kv_dim())), v(k.size());
  std::vector<float> gate(N * static_cast<std::size_t>(c.hidden_dim)), up(gate.size());
  for (int t = 0; t < n; ++t) {
    std::memcpy(&x[static_cast<std::size_t>(t * c.dim)],
                &w.token_embd[static_cast<std::size_t>(tokens[static_cast<std::size_t>(t)] * c.dim)],
                sizeof(float) * static_cast<std::size_t>(c.dim));
  }
  for (const auto& L : w.layers) {
    cpu::rmsnorm(h.data(), x.data(), L.attn_norm.data(), n, c.dim, c.norm_eps);
    cpu::matmul(q.data(), h.data(), L.wq.data(), n, c.dim, c.q_dim());
    cpu::matmul(k.data(), h.data(), L.wk.data(), n, c.dim, c.kv_dim());
    cpu::matmul(v.data(), h.data(), L.wv.data(), n, c.dim, c.kv_dim());
    for (int t = 0; t < n; ++t) {
      cpu::rope(&q[static_cast<std::size_t>(t * c.q_dim())], c.n_heads, c.head_dim, t, c.rope_theta);
      cpu::rope(&k[static_cast<std::size_t>(t * c.kv_dim())], c.n_kv_heads, c.head_dim, t, c.rope_theta);
    }
    cpu::causal_attention(att.data(), q.data(), k.data(), v.data(), n, c.n_heads, c.n_kv_heads, c.head_dim);
    cpu::matmul(proj.data(), att.data(), L.wo.data(), n, c.q_dim(), c.dim);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += proj[i];
    cpu::rmsnorm(h.data(), x.data(), L.ffn_norm.data(), n, c.dim, c.norm_eps);
    cpu::matmul(gate.data(), h.data(), L.w_gate.data(), n, c.dim, c.hidden_dim);
    cpu::matmul(up.data(), h.data(), L.w_up.data(), n, c.dim, c.hidden_dim);
    cpu::swiglu(gate.data(), gate.data(), up.data(), gate.size());
    cpu::matmul(proj.data(), gate.data(), L.w_down.data(), n, c.hidden_dim, c.dim);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += proj[i];
  }
  cpu::rmsnorm(h.data(), x.data(), w.output_norm.data(), n, c.dim, c.norm_eps);
  std::vector<float> logits(N * static_cast<std::size_t>(c.vocab_size));
  cpu::matmul(logits.data(), h.data(), w.classifier(), n, c.dim, c.vocab_size);
  return logits;
}

}  // namespace llm::test
