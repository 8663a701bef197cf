#include "tests/helpers/random_model.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

namespace llm::test {

std::vector<RandomModelSpec> awkward_specs() {
  std::vector<RandomModelSpec> s;
  // name, dim, layers, heads, kv heads, hidden, vocab, context, theta, eps, tied, seed
  s.push_back({"mha-tied", 32, 2, 4, 4, 64, 96, 40, 10000.0f, 1e-5f, true, 11});
  s.push_back({"gqa-odd-heads", 42, 2, 7, 1, 50, 77, 40, 10000.0f, 1e-5f, false, 12});  // 7 heads x 6, dims % 8 != 0
  s.push_back({"gqa-3-of-9", 54, 3, 9, 3, 70, 101, 48, 500000.0f, 1e-6f, true, 13});    // SmolLM2's head layout, shrunk
  s.push_back({"one-head", 10, 1, 1, 1, 13, 33, 24, 10000.0f, 1e-5f, false, 14});       // head_dim 10, tiny everything
  return s;
}

ModelWeights make_random_weights(const RandomModelSpec& s) {
  ModelWeights w;
  ModelConfig& c = w.config;
  c.dim = s.dim;
  c.n_layers = s.n_layers;
  c.n_heads = s.n_heads;
  c.n_kv_heads = s.n_kv_heads;
  c.head_dim = s.dim / s.n_heads;
  c.hidden_dim = s.hidden_dim;
  c.vocab_size = s.vocab;
  c.context_length = s.context;
  c.rope_theta = s.rope_theta;
  c.norm_eps = s.norm_eps;
  c.tied_embeddings = s.tied;
  c.validate("random model " + s.name);

  std::mt19937_64 rng(s.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto matrix = [&](int rows, int cols) {
    std::vector<float> m(static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols));
    const float scale = 1.0f / std::sqrt(static_cast<float>(cols));
    for (auto& x : m) x = normal(rng) * scale;
    return m;
  };
  auto norm = [&](int n) {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (auto& x : v) x = 1.0f + 0.1f * normal(rng);
    return v;
  };
  w.token_embd.resize(static_cast<std::size_t>(s.vocab) * static_cast<std::size_t>(s.dim));
  for (auto& x : w.token_embd) x = 0.5f * normal(rng);
  for (int l = 0; l < s.n_layers; ++l) {
    LayerWeights L;
    L.attn_norm = norm(c.dim);
    L.wq = matrix(c.q_dim(), c.dim);
    L.wk = matrix(c.kv_dim(), c.dim);
    L.wv = matrix(c.kv_dim(), c.dim);
    L.wo = matrix(c.dim, c.q_dim());
    L.ffn_norm = norm(c.dim);
    L.w_gate = matrix(c.hidden_dim, c.dim);
    L.w_up = matrix(c.hidden_dim, c.dim);
    L.w_down = matrix(c.dim, c.hidden_dim);
    w.layers.push_back(std::move(L));
  }
  w.output_norm = norm(c.dim);
  if (!s.tied) {
    w.output.resize(w.token_embd.size());
    for (auto& x : w.output) x = 0.5f * normal(rng);
  }
  return w;
}

namespace {
std::vector<std::string> vocab_pieces(int vocab) {
  std::vector<std::string> p = {"<unk>", "<s>", "</s>"};
  for (int i = 3; i < vocab; ++i) {
    char piece[16];
    std::snprintf(piece, sizeof(piece), "t%d", i);
    p.emplace_back(piece);
  }
  return p;
}
}  // namespace

GGUFWriter gguf_for(const ModelWeights& w, int tokenizer_vocab) {
  const ModelConfig& c = w.config;
  GGUFWriter g;
  g.add_string("general.architecture", "llama");
  g.add_string("general.name", "random test model");
  g.add_u32("llama.embedding_length", static_cast<std::uint32_t>(c.dim));
  g.add_u32("llama.block_count", static_cast<std::uint32_t>(c.n_layers));
  g.add_u32("llama.attention.head_count", static_cast<std::uint32_t>(c.n_heads));
  g.add_u32("llama.attention.head_count_kv", static_cast<std::uint32_t>(c.n_kv_heads));
  g.add_u32("llama.feed_forward_length", static_cast<std::uint32_t>(c.hidden_dim));
  g.add_u32("llama.context_length", static_cast<std::uint32_t>(c.context_length));
  g.add_u32("llama.rope.dimension_count", static_cast<std::uint32_t>(c.head_dim));
  g.add_f32("llama.rope.freq_base", c.rope_theta);
  g.add_f32("llama.attention.layer_norm_rms_epsilon", c.norm_eps);
  g.add_string("tokenizer.ggml.model", "llama");
  const auto pieces = vocab_pieces(tokenizer_vocab > 0 ? tokenizer_vocab : c.vocab_size);
  g.add_string_array("tokenizer.ggml.tokens", pieces);
  std::vector<float> scores;
  std::vector<std::int32_t> types;
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    scores.push_back(-static_cast<float>(i));
    types.push_back(i == 0 ? 2 : (i < 3 ? 3 : 1));
  }
  g.add_f32_array("tokenizer.ggml.scores", scores);
  g.add_i32_array("tokenizer.ggml.token_type", types);
  g.add_u32("tokenizer.ggml.bos_token_id", 1);
  g.add_u32("tokenizer.ggml.eos_token_id", 2);
  g.add_u32("tokenizer.ggml.unknown_token_id", 0);

  const auto dim = static_cast<std::size_t>(c.dim), hidden = static_cast<std::size_t>(c.hidden_dim);
  const auto q_dim = static_cast<std::size_t>(c.q_dim()), kv_dim = static_cast<std::size_t>(c.kv_dim());
  g.add_f32_tensor("token_embd.weight", static_cast<std::size_t>(c.vocab_size), dim, w.token_embd);
  for (int l = 0; l < c.n_layers; ++l) {
    const auto& L = w.layers[static_cast<std::size_t>(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    g.add_f32_tensor(p + "attn_norm.weight", 1, dim, L.attn_norm);
    g.add_f32_tensor(p + "attn_q.weight", q_dim, dim, L.wq);
    g.add_f32_tensor(p + "attn_k.weight", kv_dim, dim, L.wk);
    g.add_f32_tensor(p + "attn_v.weight", kv_dim, dim, L.wv);
    g.add_f32_tensor(p + "attn_output.weight", dim, q_dim, L.wo);
    g.add_f32_tensor(p + "ffn_norm.weight", 1, dim, L.ffn_norm);
    g.add_f32_tensor(p + "ffn_gate.weight", hidden, dim, L.w_gate);
    g.add_f32_tensor(p + "ffn_up.weight", hidden, dim, L.w_up);
    g.add_f32_tensor(p + "ffn_down.weight", dim, hidden, L.w_down);
  }
  g.add_f32_tensor("output_norm.weight", 1, dim, w.output_norm);
  if (!w.output.empty()) g.add_f32_tensor("output.weight", static_cast<std::size_t>(c.vocab_size), dim, w.output);
  return g;
}

void write_gguf_model(const ModelWeights& w, const std::string& path) {
  gguf_for(w).write(path);
}

void write_llama2c_model(const ModelWeights& w, const std::string& path) {
  const ModelConfig& c = w.config;
  std::vector<std::uint8_t> out;
  auto put_floats = [&out](const std::vector<float>& v) {
    const std::size_t at = out.size();
    out.resize(at + v.size() * sizeof(float));
    std::memcpy(out.data() + at, v.data(), v.size() * sizeof(float));
  };
  const std::int32_t header[7] = {c.dim,           c.hidden_dim, c.n_layers,
                                  c.n_heads,       c.n_kv_heads, c.tied_embeddings ? c.vocab_size : -c.vocab_size,
                                  c.context_length};
  out.resize(sizeof(header));
  std::memcpy(out.data(), header, sizeof(header));
  put_floats(w.token_embd);
  for (const auto& L : w.layers) put_floats(L.attn_norm);
  for (const auto& L : w.layers) put_floats(L.wq);
  for (const auto& L : w.layers) put_floats(L.wk);
  for (const auto& L : w.layers) put_floats(L.wv);
  for (const auto& L : w.layers) put_floats(L.wo);
  for (const auto& L : w.layers) put_floats(L.ffn_norm);
  for (const auto& L : w.layers) put_floats(L.w_gate);
  for (const auto& L : w.layers) put_floats(L.w_down);
  for (const auto& L : w.layers) put_floats(L.w_up);
  put_floats(w.output_norm);
  put_floats(
      std::vector<float>(static_cast<std::size_t>(c.context_length) * static_cast<std::size_t>(c.head_dim), 0.0f));
  if (!w.output.empty()) put_floats(w.output);
  write_file(path, out);
}

void write_llama2c_tokenizer(int vocab, const std::string& path) {
  std::vector<std::uint8_t> out;
  auto put = [&out](const void* p, std::size_t n) {
    const std::size_t at = out.size();
    out.resize(at + n);
    std::memcpy(out.data() + at, p, n);
  };
  const std::int32_t max_len = 16;
  put(&max_len, 4);
  const auto pieces = vocab_pieces(vocab);
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    const float score = -static_cast<float>(i);
    const auto len = static_cast<std::int32_t>(pieces[i].size());
    put(&score, 4);
    put(&len, 4);
    put(pieces[i].data(), pieces[i].size());
  }
  write_file(path, out);
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("llm-test-" + std::to_string(::getpid()) + "-" + name)).string();
}

std::string repo_path(const std::string& relative) {
  return std::string(LLM_SOURCE_DIR) + "/" + relative;
}

}  // namespace llm::test
