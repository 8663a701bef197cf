// model_llama2c.cpp: karpathy's llama2.c checkpoint format (the legacy "version 0" export).
//
//   int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
//   fp32 token_embedding[vocab, dim]
//   fp32 rms_att[layers, dim], wq[layers, dim, dim], wk[layers, kv_dim, dim], wv[layers, kv_dim, dim],
//        wo[layers, dim, dim], rms_ffn[layers, dim], w1[layers, hidden, dim], w2[layers, dim, hidden],
//        w3[layers, hidden, dim], rms_final[dim]
//   fp32 freq_cis_real[seq_len, head_dim/2], freq_cis_imag[...]   (unused, skipped)
//   fp32 wcls[vocab, dim]                                           only if vocab_size < 0
// w1 is the SwiGLU gate, w3 the up projection, w2 the down projection. RoPE theta is 10000
// and the RMSNorm epsilon 1e-5, fixed by llama2.c.
#include <cstdint>
#include <cstring>

#include "common/error.h"
#include "common/mapped_file.h"
#include "common/model_weights.h"

namespace llm {

ModelWeights load_llama2c_weights(const std::string& path) {
  MappedFile file(path);
  if (file.size() < 28) {
    throw Error(path + ": file is truncated: " + std::to_string(file.size()) +
                " bytes, but a llama2.c header alone is 28");
  }
  std::int32_t h[7];
  std::memcpy(h, file.data(), sizeof(h));
  if (std::memcmp(file.data(), "ak42", 4) == 0 || static_cast<std::uint32_t>(h[0]) == 0x616b3432u) {
    throw Error(path + ": this is a llama2.c 'ak42' export (version " + std::to_string(h[1]) +
                "); only the legacy version-0 .bin is supported (export with --version 0)");
  }
  ModelWeights w;
  ModelConfig& c = w.config;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.tied_embeddings = h[5] > 0;
  c.vocab_size = h[5] < 0 ? -h[5] : h[5];
  c.context_length = h[6];
  c.rope_theta = 10000.0f;
  c.norm_eps = 1e-5f;
  const std::string header = " (header: dim " + std::to_string(h[0]) + ", hidden_dim " + std::to_string(h[1]) +
                             ", n_layers " + std::to_string(h[2]) + ", n_heads " + std::to_string(h[3]) +
                             ", n_kv_heads " + std::to_string(h[4]) + ", vocab_size " + std::to_string(h[5]) +
                             ", seq_len " + std::to_string(h[6]) + ")";
  if (c.n_heads <= 0 || c.dim <= 0 || c.dim % c.n_heads != 0) {
    throw Error(path + ": dim " + std::to_string(c.dim) + " is not a positive multiple of n_heads " +
                std::to_string(c.n_heads) + header);
  }
  c.head_dim = c.dim / c.n_heads;
  c.validate(path + header);

  const auto dim = static_cast<std::uint64_t>(c.dim), hidden = static_cast<std::uint64_t>(c.hidden_dim);
  const auto layers = static_cast<std::uint64_t>(c.n_layers), vocab = static_cast<std::uint64_t>(c.vocab_size);
  const auto kv_dim = static_cast<std::uint64_t>(c.kv_dim()), hd = static_cast<std::uint64_t>(c.head_dim);
  const std::uint64_t floats =
      vocab * dim + layers * (2 * dim + dim * dim + 2 * kv_dim * dim + dim * dim + 3 * hidden * dim) + dim +
      static_cast<std::uint64_t>(c.context_length) * hd + (c.tied_embeddings ? 0 : vocab * dim);
  const std::uint64_t want = 28 + 4 * floats;
  if (file.size() != want) {
    throw Error(path + ": file size is " + std::to_string(file.size()) + " bytes but the header implies " +
                std::to_string(want) +
                (file.size() < want ? " (truncated file?)" : " (trailing bytes: wrong format or header?)") + header);
  }

  const float* p = reinterpret_cast<const float*>(file.data() + 28);
  auto take = [&p](std::uint64_t n) {
    std::vector<float> v(static_cast<std::size_t>(n));
    std::memcpy(v.data(), p, n * sizeof(float));
    p += n;
    return v;
  };
  w.token_embd = take(vocab * dim);
  w.layers.resize(static_cast<std::size_t>(layers));
  // Each tensor kind is stored for all layers at once; peel them off layer by layer.
  for (auto& L : w.layers) L.attn_norm = take(dim);
  for (auto& L : w.layers) L.wq = take(dim * dim);
  for (auto& L : w.layers) L.wk = take(kv_dim * dim);
  for (auto& L : w.layers) L.wv = take(kv_dim * dim);
  for (auto& L : w.layers) L.wo = take(dim * dim);
  for (auto& L : w.layers) L.ffn_norm = take(dim);
  for (auto& L : w.layers) L.w_gate = take(hidden * dim);
  for (auto& L : w.layers) L.w_down = take(dim * hidden);
  for (auto& L : w.layers) L.w_up = take(hidden * dim);
  w.output_norm = take(dim);
  p += static_cast<std::uint64_t>(c.context_length) * hd;  // the old freq_cis tables
  if (!c.tied_embeddings) w.output = take(vocab * dim);
  return w;
}

}  // namespace llm
