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
//
// The format has no magic: the header is trusted only once every field is within
// ModelConfig's limits and the exact size it implies is the file's size.
#include <cstdint>
#include <cstring>

#include "common/checked.h"
#include "common/error.h"
#include "common/mapped_file.h"
#include "common/model_weights.h"

namespace llm {

namespace {

constexpr std::size_t kHeaderBytes = 7 * sizeof(std::int32_t);

/// The header's seven fields as the file has them, and the config and file size they imply.
struct Llama2cHeader {
  std::int32_t raw[7] = {};
  ModelConfig config;
  std::uint64_t file_bytes = 0;
};

std::string header_text(const std::int32_t (&h)[7]) {
  return "llama2.c header: dim=" + std::to_string(h[0]) + ", hidden_dim=" + std::to_string(h[1]) +
         ", n_layers=" + std::to_string(h[2]) + ", n_heads=" + std::to_string(h[3]) +
         ", n_kv_heads=" + std::to_string(h[4]) + ", vocab_size=" + std::to_string(h[5]) +
         ", seq_len=" + std::to_string(h[6]);
}

// The header's fields, each checked; throws llm::Error "<name>: llama2.c header: dim=..., ...:
// <field> is <value> (<limit>)". `name` may be empty (the loader's sniffing adds its own).
Llama2cHeader read_header_fields(const std::uint8_t* data, std::size_t size, const std::string& name) {
  const std::string file = name.empty() ? "" : name + ": ";
  if (size < kHeaderBytes) {
    throw Error(file + "file is truncated: " + std::to_string(size) + " bytes, but a llama2.c header alone is " +
                std::to_string(kHeaderBytes));
  }
  Llama2cHeader hd;
  std::int32_t(&h)[7] = hd.raw;
  std::memcpy(h, data, kHeaderBytes);
  const std::string where = file + header_text(h);
  // Each field against its limit, in header order, before any arithmetic. vocab_size < 0 flags
  // an unshared classifier; its magnitude is taken in 64 bits, so that INT32_MIN is a number that
  // fails the limit rather than a negation that overflows.
  auto in_range = [&where](const char* field, std::int64_t v, std::int64_t limit, const char* note) {
    if (v < 1 || v > limit) {
      throw Error(where + ": " + field + " is " + std::to_string(v) + " (must be between 1 and " +
                  std::to_string(limit) + note + ")");
    }
  };
  in_range("dim", h[0], ModelConfig::kMaxDim, "");
  in_range("hidden_dim", h[1], ModelConfig::kMaxHiddenDim, "");
  in_range("n_layers", h[2], ModelConfig::kMaxLayers, "");
  in_range("n_heads", h[3], ModelConfig::kMaxHeads, "");
  in_range("n_kv_heads", h[4], ModelConfig::kMaxHeads, "");
  const std::int64_t vocab = h[5] < 0 ? -static_cast<std::int64_t>(h[5]) : h[5];
  if (vocab < 1 || vocab > ModelConfig::kMaxVocab) {
    throw Error(where + ": vocab_size is " + std::to_string(h[5]) + " (its magnitude must be between 1 and " +
                std::to_string(ModelConfig::kMaxVocab) + "; negative means an unshared classifier)");
  }
  in_range("seq_len", h[6], ModelConfig::kMaxContext, "");
  ModelConfig& c = hd.config;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.tied_embeddings = h[5] > 0;
  c.vocab_size = static_cast<int>(vocab);
  c.context_length = h[6];
  c.rope_theta = 10000.0f;
  c.norm_eps = 1e-5f;
  if (c.dim % c.n_heads != 0) {
    throw Error(where + ": dim " + std::to_string(c.dim) + " is not a positive multiple of n_heads " +
                std::to_string(c.n_heads));
  }
  c.head_dim = c.dim / c.n_heads;
  c.validate(where);  // every field positive and within its limit, heads consistent
  return hd;
}

// The exact file size the header implies, checked against the image's.
void check_size(Llama2cHeader& hd, std::size_t size, const std::string& name) {
  const ModelConfig& c = hd.config;
  const std::string where = (name.empty() ? "" : name + ": ") + header_text(hd.raw);
  // The exact size, in 64 bits and overflow-checked (the limits above keep it far below 2^63,
  // but the check costs nothing and stays right if they grow).
  using U = std::uint64_t;
  const std::string what = where + ": the size the header implies";
  auto mul = [&what](U a, U b) { return checked_mul(a, b, what); };
  auto add = [&what](U a, U b) { return checked_add(a, b, what); };
  const U dim = static_cast<U>(c.dim), hidden = static_cast<U>(c.hidden_dim), layers = static_cast<U>(c.n_layers),
          kv_dim = static_cast<U>(c.kv_dim()), hdim = static_cast<U>(c.head_dim), vocab = static_cast<U>(c.vocab_size),
          seq = static_cast<U>(c.context_length);
  const U per_layer =
      add(add(mul(2, dim), mul(2, mul(dim, dim))), add(mul(2, mul(kv_dim, dim)), mul(3, mul(hidden, dim))));
  U floats = add(mul(vocab, dim), mul(layers, per_layer));
  floats = add(floats, add(dim, mul(seq, hdim)));  // rms_final, then freq_cis_real + imag (seq x hd/2 each)
  if (!c.tied_embeddings) floats = add(floats, mul(vocab, dim));
  hd.file_bytes = add(kHeaderBytes, mul(floats, sizeof(float)));
  if (size != hd.file_bytes) {
    throw Error(where + ": file size is " + std::to_string(size) + " bytes but the header implies " +
                std::to_string(hd.file_bytes) +
                (size < hd.file_bytes ? " (truncated file?)" : " (trailing bytes: wrong format or header?)"));
  }
}

// llama2.c's versioned exports start with the uint32 0x616b3432 ("24ka" on disk); "ak42" as
// written text is caught too.
bool is_ak42(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return false;
  std::uint32_t magic;
  std::memcpy(&magic, data, 4);
  return magic == 0x616b3432u || std::memcmp(data, "ak42", 4) == 0;
}

Llama2cHeader read_header(const std::uint8_t* data, std::size_t size, const std::string& name) {
  if (is_ak42(data, size)) {
    std::int32_t version = 0;
    if (size >= 8) std::memcpy(&version, data + 4, 4);
    throw Error(name + ": this is a llama2.c 'ak42' export (version " + std::to_string(version) +
                "); only the legacy version-0 .bin is supported (export with --version 0)");
  }
  Llama2cHeader hd = read_header_fields(data, size, name);
  check_size(hd, size, name);
  return hd;
}

}  // namespace

Llama2cHeaderStatus check_llama2c_header(const std::uint8_t* data, std::size_t size, std::string* why) {
  if (is_ak42(data, size)) return Llama2cHeaderStatus::kDamaged;
  Llama2cHeader hd;
  try {
    hd = read_header_fields(data, size, "");
  } catch (const Error& e) {
    if (why != nullptr) *why = e.what();
    return Llama2cHeaderStatus::kOther;
  }
  try {
    check_size(hd, size, "");
  } catch (const Error& e) {
    if (why != nullptr) *why = e.what();
    return Llama2cHeaderStatus::kDamaged;
  }
  return Llama2cHeaderStatus::kValid;
}

ModelWeights load_llama2c_weights(const std::uint8_t* data, std::size_t size, const std::string& name) {
  const Llama2cHeader hd = read_header(data, size, name);
  ModelWeights w;
  w.config = hd.config;
  const ModelConfig& c = w.config;
  // Sizes below are exact: read_header checked that the file holds all of them.
  const auto dim = static_cast<std::size_t>(c.dim), hidden = static_cast<std::size_t>(c.hidden_dim);
  const auto vocab = static_cast<std::size_t>(c.vocab_size), kv_dim = static_cast<std::size_t>(c.kv_dim());
  std::size_t at = kHeaderBytes;  // byte offset of the next tensor
  // Copies bytes rather than casting: an in-memory image need not be 4-byte aligned.
  auto take = [&](std::size_t rows, std::size_t cols, const std::string& tensor) {
    std::vector<float> v(rows * cols);
    std::memcpy(v.data(), data + at, v.size() * sizeof(float));
    refuse_non_finite(name, tensor, v, cols,
                      [at](std::size_t i) { return " (file offset " + std::to_string(at + i * sizeof(float)) + ")"; });
    at += v.size() * sizeof(float);
    return v;
  };
  w.token_embd = take(vocab, dim, "token_embedding_table");
  w.layers.resize(static_cast<std::size_t>(c.n_layers));
  // Each tensor kind is stored for all layers at once; peel them off layer by layer.
  auto each_layer = [&](std::vector<float> LayerWeights::*field, std::size_t rows, std::size_t cols,
                        const char* tensor) {
    for (std::size_t l = 0; l < w.layers.size(); ++l)
      w.layers[l].*field = take(rows, cols, std::string(tensor) + "[layer " + std::to_string(l) + "]");
  };
  each_layer(&LayerWeights::attn_norm, 1, dim, "rms_att_weight");
  each_layer(&LayerWeights::wq, dim, dim, "wq");
  each_layer(&LayerWeights::wk, kv_dim, dim, "wk");
  each_layer(&LayerWeights::wv, kv_dim, dim, "wv");
  each_layer(&LayerWeights::wo, dim, dim, "wo");
  each_layer(&LayerWeights::ffn_norm, 1, dim, "rms_ffn_weight");
  each_layer(&LayerWeights::w_gate, hidden, dim, "w1");
  each_layer(&LayerWeights::w_down, dim, hidden, "w2");
  each_layer(&LayerWeights::w_up, hidden, dim, "w3");
  w.output_norm = take(1, dim, "rms_final_weight");
  at += static_cast<std::size_t>(c.context_length) * static_cast<std::size_t>(c.head_dim) * sizeof(float);  // freq_cis
  if (!c.tied_embeddings) w.output = take(vocab, dim, "wcls");
  return w;
}

ModelWeights load_llama2c_weights(const std::string& path) {
  MappedFile file(path);
  return load_llama2c_weights(file.data(), file.size(), path);
}

}  // namespace llm
