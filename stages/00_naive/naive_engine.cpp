// naive_engine.cpp: the Llama forward pass, top to bottom, and generation by recomputation.
//
//   x = embed(tokens)                                   [n, dim]
//   for each layer:
//     h = rmsnorm(x)
//     q, k, v = h Wq^T, h Wk^T, h Wv^T; rope(q), rope(k)
//     x = x + attention(q, k, v) Wo^T                   (causal, grouped-query)
//     h = rmsnorm(x)
//     x = x + (silu(h Wgate^T) * h Wup^T) Wdown^T       (SwiGLU MLP)
//   logits = rmsnorm(x) Wcls^T                          [n, vocab]
#include "naive_engine.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "common/sampler.h"
#include "common/timer.h"
#include "kernels/cpu/ops.h"
#include "naive_ops.h"

namespace llm::stage00 {

std::vector<float> forward(const ModelWeights& w, const std::vector<int>& tokens, bool all_positions) {
  const ModelConfig& c = w.config;
  const int n = static_cast<int>(tokens.size());
  if (n == 0) throw Error("forward: no tokens");
  if (n > c.context_length)
    throw Error("forward: " + std::to_string(n) + " tokens exceed the context of " + std::to_string(c.context_length));
  const long dim = c.dim, hidden = c.hidden_dim;

  // Activations for the whole sequence; nothing survives from one call to the next.
  std::vector<float> x(static_cast<std::size_t>(n * dim)), h(x.size());
  std::vector<float> q(static_cast<std::size_t>(n) * static_cast<std::size_t>(c.q_dim()));
  std::vector<float> k(static_cast<std::size_t>(n) * static_cast<std::size_t>(c.kv_dim())), v(k.size());
  std::vector<float> att(q.size()), proj(x.size());
  std::vector<float> gate(static_cast<std::size_t>(n * hidden)), up(gate.size());

  for (int t = 0; t < n; ++t) {
    const int id = tokens[static_cast<std::size_t>(t)];
    if (id < 0 || id >= c.vocab_size)
      throw Error("forward: token id " + std::to_string(id) + " is outside the vocabulary of " +
                  std::to_string(c.vocab_size));
    std::memcpy(&x[static_cast<std::size_t>(t * dim)], &w.token_embd[static_cast<std::size_t>(id * dim)],
                sizeof(float) * static_cast<std::size_t>(dim));
  }

  for (const LayerWeights& L : w.layers) {
    // Attention block.
    rmsnorm(h.data(), x.data(), L.attn_norm.data(), n, c.dim, c.norm_eps);
    cpu::matmul(q.data(), h.data(), L.wq.data(), n, c.dim, c.q_dim());
    cpu::matmul(k.data(), h.data(), L.wk.data(), n, c.dim, c.kv_dim());
    cpu::matmul(v.data(), h.data(), L.wv.data(), n, c.dim, c.kv_dim());
    rope(q.data(), n, c.n_heads, c.head_dim, c.rope_theta);
    rope(k.data(), n, c.n_kv_heads, c.head_dim, c.rope_theta);
    causal_attention(att.data(), q.data(), k.data(), v.data(), n, c.n_heads, c.n_kv_heads, c.head_dim);
    cpu::matmul(proj.data(), att.data(), L.wo.data(), n, c.q_dim(), c.dim);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += proj[i];

    // Feed-forward block.
    rmsnorm(h.data(), x.data(), L.ffn_norm.data(), n, c.dim, c.norm_eps);
    cpu::matmul(gate.data(), h.data(), L.w_gate.data(), n, c.dim, c.hidden_dim);
    cpu::matmul(up.data(), h.data(), L.w_up.data(), n, c.dim, c.hidden_dim);
    swiglu(gate.data(), gate.data(), up.data(), n * hidden);
    cpu::matmul(proj.data(), gate.data(), L.w_down.data(), n, c.hidden_dim, c.dim);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += proj[i];
  }

  // Only the rows we need go through the (large) classifier.
  const int first = all_positions ? 0 : n - 1;
  const int rows = n - first;
  rmsnorm(h.data(), x.data() + first * dim, w.output_norm.data(), rows, c.dim, c.norm_eps);
  std::vector<float> logits(static_cast<std::size_t>(rows) * static_cast<std::size_t>(c.vocab_size));
  cpu::matmul(logits.data(), h.data(), w.classifier(), rows, c.dim, c.vocab_size);
  return logits;
}

NaiveEngine::NaiveEngine(const ModelWeights& weights, std::vector<int> stop_ids)
    : w_(weights), stop_ids_(std::move(stop_ids)) {}

std::vector<float> NaiveEngine::logits(const std::vector<int>& tokens) {
  return forward(w_, tokens, true);
}

std::vector<RequestResult> NaiveEngine::run(const std::vector<Request>& requests, const TokenCallback& on_token) {
  std::vector<RequestResult> results;
  Timer clock;  // times are seconds since the run started
  for (std::size_t r = 0; r < requests.size(); ++r) {
    const Request& req = requests[r];
    // One request at a time: a request that has not arrived yet is waited for.
    wait_until(clock, req.arrival_s);
    RequestResult out = result_for(req);
    Sampler sampler(req.sampling);
    std::vector<int> seq = req.prompt;
    for (int step = 0; step < req.max_new_tokens; ++step) {
      // The whole lesson of this stage: every new token re-runs every earlier one.
      const std::vector<float> last = forward(w_, seq, /*all_positions=*/false);
      out.error = non_finite_logits(last.data(), w_.config.vocab_size, out.tokens.size());
      if (!out.error.empty()) break;  // no token can be sampled from NaN/Inf
      const int next = sampler.sample(last.data(), w_.config.vocab_size);
      out.tokens.push_back(next);
      out.token_time_s.push_back(clock.seconds());
      if (on_token) on_token(r, next);
      if (is_stop(stop_ids_, next)) {
        out.stopped = true;
        break;
      }
      seq.push_back(next);
    }
    results.push_back(std::move(out));
  }
  return results;
}

}  // namespace llm::stage00
