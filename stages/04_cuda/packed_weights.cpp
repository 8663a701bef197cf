#include "packed_weights.h"

#include <cmath>
#include <cstdio>

#include "common/error.h"
#include "kernels/cpu/half.h"

namespace llm::stage04 {

namespace {

// The loaders refused NaN and Inf; a finite fp32 weight beyond fp16's range (65504) would still
// become Inf here, so it is refused by name.
void append_half(std::vector<std::uint16_t>& out, const std::vector<float>& v, const std::string& tensor) {
  out.reserve(out.size() + v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::uint16_t h = cpu::float_to_half(v[i]);
    if ((h & 0x7C00u) == 0x7C00u && std::isfinite(v[i])) {
      char value[32];
      std::snprintf(value, sizeof(value), "%g", static_cast<double>(v[i]));
      throw Error("tensor '" + tensor + "' element " + std::to_string(i) + " is " + value +
                  ", beyond fp16's range (+-65504): stage 04 keeps weights in fp16");
    }
    out.push_back(h);
  }
}

}  // namespace

PackedWeights pack_weights(const ModelWeights& w) {
  PackedWeights p;
  p.config = w.config;
  append_half(p.embed, w.token_embd, "token_embd.weight");
  p.output_norm = w.output_norm;
  if (!w.output.empty()) append_half(p.classifier, w.output, "output.weight");
  for (const LayerWeights& L : w.layers) {
    const std::string b = "blk." + std::to_string(p.layers.size()) + ".";
    PackedLayer q;
    q.attn_norm = L.attn_norm;
    q.ffn_norm = L.ffn_norm;
    append_half(q.wqkv, L.wq, b + "attn_q.weight");
    append_half(q.wqkv, L.wk, b + "attn_k.weight");
    append_half(q.wqkv, L.wv, b + "attn_v.weight");
    append_half(q.wo, L.wo, b + "attn_output.weight");
    append_half(q.w13, L.w_gate, b + "ffn_gate.weight");
    append_half(q.w13, L.w_up, b + "ffn_up.weight");
    append_half(q.w2, L.w_down, b + "ffn_down.weight");
    p.layers.push_back(std::move(q));
  }
  return p;
}

double PackedWeights::bytes_per_step() const {
  double bytes =
      2.0 * static_cast<double>(classifier_or_embed().size()) + 4.0 * static_cast<double>(output_norm.size());
  for (const PackedLayer& L : layers)
    bytes += 2.0 * static_cast<double>(L.wqkv.size() + L.wo.size() + L.w13.size() + L.w2.size()) +
             4.0 * static_cast<double>(L.attn_norm.size() + L.ffn_norm.size());
  return bytes;
}

std::size_t packed_weight_bytes(const ModelConfig& c, bool tied_embeddings) {
  const std::size_t dim = static_cast<std::size_t>(c.dim), hd = static_cast<std::size_t>(c.head_dim);
  const std::size_t qkv = static_cast<std::size_t>(c.n_heads + 2 * c.n_kv_heads) * hd;
  const std::size_t layer = 2 * (qkv * dim + dim * static_cast<std::size_t>(c.n_heads) * hd +
                                 3 * static_cast<std::size_t>(c.hidden_dim) * dim) +
                            4 * 2 * dim;
  const std::size_t embed = 2 * static_cast<std::size_t>(c.vocab_size) * dim;
  return embed * (tied_embeddings ? 1 : 2) + layer * static_cast<std::size_t>(c.n_layers) + 4 * dim;
}

}  // namespace llm::stage04
