// model_gguf.cpp: config and weights of a Llama model from a GGUF file.
#include <cstdio>

#include "common/checked.h"
#include "common/error.h"
#include "common/gguf.h"
#include "common/model_weights.h"
#include "kernels/cpu/dequantize.h"

namespace llm {

namespace {

std::string show_float(float x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", static_cast<double>(x));
  return buf;
}

ModelConfig read_config(const GGUFFile& f) {
  ModelConfig c;
  c.architecture = f.get_string("general.architecture");
  if (c.architecture != "llama") {
    throw Error(f.path() + ": general.architecture is '" + c.architecture +
                "': this engine runs the Llama architecture ('llama')");
  }
  const std::string a = c.architecture + ".";
  // ModelConfig::validate applies each field's own limit; this one only keeps the int exact.
  constexpr std::int64_t kMaxField = std::int64_t{1} << 30;
  auto get_int = [&](const std::string& key) {
    const auto v = f.get_int(key);
    if (v <= 0 || v > kMaxField) {
      throw Error(f.path() + ": " + key + " is " + std::to_string(v) + " (must be between 1 and " +
                  std::to_string(kMaxField) + ")");
    }
    return static_cast<int>(v);
  };
  c.dim = get_int(a + "embedding_length");
  c.n_layers = get_int(a + "block_count");
  c.n_heads = get_int(a + "attention.head_count");
  c.n_kv_heads = f.has(a + "attention.head_count_kv") ? get_int(a + "attention.head_count_kv") : c.n_heads;
  c.hidden_dim = get_int(a + "feed_forward_length");
  c.context_length = get_int(a + "context_length");
  if (!f.has(a + "attention.key_length") && c.dim % c.n_heads != 0) {
    throw Error(f.path() + ": " + a + "embedding_length " + std::to_string(c.dim) +
                " is not a multiple of attention.head_count " + std::to_string(c.n_heads) + " (and there is no " + a +
                "attention.key_length to give the head size)");
  }
  c.head_dim = f.has(a + "attention.key_length") ? get_int(a + "attention.key_length") : c.dim / c.n_heads;
  if (f.has(a + "rope.dimension_count") && get_int(a + "rope.dimension_count") != c.head_dim) {
    throw Error(f.path() + ": " + a + "rope.dimension_count is " +
                std::to_string(f.get_int(a + "rope.dimension_count")) + " but the head size is " +
                std::to_string(c.head_dim) + ": partial rotary embeddings are not supported");
  }
  c.rope_theta = static_cast<float>(f.get_float(a + "rope.freq_base", 10000.0));
  c.norm_eps = static_cast<float>(f.get_float(a + "attention.layer_norm_rms_epsilon", 1e-5));
  // The vocabulary size: from the key if present, else from the embedding tensor.
  const GGUFTensorInfo* emb = f.find_tensor("token_embd.weight");
  if (f.has(a + "vocab_size"))
    c.vocab_size = get_int(a + "vocab_size");
  else if (emb != nullptr && emb->dims.size() == 2)
    c.vocab_size = narrow<int>(emb->dims[1], f.path() + ": token_embd.weight's vocabulary dimension");
  else
    throw Error(f.path() + ": no " + a + "vocab_size key and no 2-D token_embd.weight to read it from");
  c.tied_embeddings = f.find_tensor("output.weight") == nullptr;
  c.validate(f.path());
  return c;
}

// Dequantizes tensor `name` into fp32 after checking its shape is [rows, cols] (ggml order:
// dims[0] = cols).
std::vector<float> read_tensor(const GGUFFile& f, const std::string& name, std::size_t rows, std::size_t cols) {
  const GGUFTensorInfo* t = f.find_tensor(name);
  if (t == nullptr) throw Error(f.path() + ": missing tensor '" + name + "'");
  std::vector<std::uint64_t> want =
      rows == 1 ? std::vector<std::uint64_t>{cols} : std::vector<std::uint64_t>{cols, rows};
  auto dims = t->dims;
  while (dims.size() > want.size() && dims.back() == 1) dims.pop_back();  // [cols, 1] == [cols]
  if (dims != want) {
    auto show = [](const std::vector<std::uint64_t>& d) {
      std::string s = "[";
      for (std::size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
      return s + "]";
    };
    throw Error(f.path() + ": tensor '" + name + "' has shape " + show(t->dims) +
                " (ggml order) but the config needs " + show(want));
  }
  std::vector<float> out(rows * cols);
  cpu::dequantize(t->type, f.tensor_data(*t), out.data(), out.size());
  refuse_non_finite(f.path(), name, out, cols, [&](std::size_t i) -> std::string {
    const std::size_t block = i / block_elements(t->type);
    const auto s = cpu::block_scales(t->type, f.tensor_data(*t), block);
    if (!s) return "";
    std::string why =
        ": its " + tensor_type_name(t->type) + " block " + std::to_string(block) + " has scale d = " + show_float(s->d);
    if (s->has_min) why += " and min m = " + show_float(s->m);
    return why;
  });
  return out;
}

}  // namespace

ModelWeights load_gguf_weights(const GGUFFile& f) {
  ModelWeights w;
  w.config = read_config(f);
  const ModelConfig& c = w.config;
  const auto dim = static_cast<std::size_t>(c.dim), hidden = static_cast<std::size_t>(c.hidden_dim);
  const auto q_dim = static_cast<std::size_t>(c.q_dim()), kv_dim = static_cast<std::size_t>(c.kv_dim());
  w.token_embd = read_tensor(f, "token_embd.weight", static_cast<std::size_t>(c.vocab_size), dim);
  w.output_norm = read_tensor(f, "output_norm.weight", 1, dim);
  if (!c.tied_embeddings) w.output = read_tensor(f, "output.weight", static_cast<std::size_t>(c.vocab_size), dim);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LayerWeights L;
    L.attn_norm = read_tensor(f, p + "attn_norm.weight", 1, dim);
    L.wq = read_tensor(f, p + "attn_q.weight", q_dim, dim);
    L.wk = read_tensor(f, p + "attn_k.weight", kv_dim, dim);
    L.wv = read_tensor(f, p + "attn_v.weight", kv_dim, dim);
    L.wo = read_tensor(f, p + "attn_output.weight", dim, q_dim);
    L.ffn_norm = read_tensor(f, p + "ffn_norm.weight", 1, dim);
    L.w_gate = read_tensor(f, p + "ffn_gate.weight", hidden, dim);
    L.w_up = read_tensor(f, p + "ffn_up.weight", hidden, dim);
    L.w_down = read_tensor(f, p + "ffn_down.weight", dim, hidden);
    w.layers.push_back(std::move(L));
  }
  return w;
}

}  // namespace llm
