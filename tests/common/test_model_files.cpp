// Model files: config read from the file, GGUF and llama2.c agreeing on the same weights, and
// every way a model file can disagree with itself.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>

#include "common/error.h"
#include "common/gguf.h"
#include "common/model_weights.h"
#include "kernels/harness/compare.h"
#include "tests/helpers/random_model.h"
#include "tests/helpers/reference_forward.h"

using namespace llm;
using Catch::Matchers::Contains;

TEST_CASE("the config comes from the file", "[model]") {
  Model m = load_model(test::repo_path("datasets/test/tiny_random.gguf"));
  const ModelConfig& c = m.config();
  CHECK(m.format == "gguf");
  CHECK(c.dim == 36);
  CHECK(c.n_layers == 2);
  CHECK(c.n_heads == 6);
  CHECK(c.n_kv_heads == 2);
  CHECK(c.head_dim == 6);
  CHECK(c.hidden_dim == 92);
  CHECK(c.vocab_size == 512);
  CHECK(c.context_length == 64);
  CHECK(c.rope_theta == 10000.0f);
  CHECK(c.norm_eps == Approx(1e-5f));
  CHECK(c.tied_embeddings);
  CHECK(m.weights.output.empty());

  Model q = load_model(test::repo_path("datasets/test/tiny_random_quant.gguf"));
  CHECK(q.config().n_kv_heads == 1);
  CHECK(q.config().rope_theta == 500000.0f);
  CHECK_FALSE(q.config().tied_embeddings);
  CHECK(q.weights.output.size() == 512u * 64u);
}

TEST_CASE("GGUF and llama2.c files of the same weights give the same model", "[model]") {
  // Both classifier layouts, plus every awkward shape that llama2.c can express (its RoPE theta
  // and norm epsilon are fixed at 10000 and 1e-5).
  std::vector<test::RandomModelSpec> specs = {{"cross-tied", 24, 2, 3, 1, 40, 50, 16, 10000.0f, 1e-5f, true, 7},
                                              {"cross-untied", 24, 2, 3, 1, 40, 50, 16, 10000.0f, 1e-5f, false, 8}};
  for (const auto& s : test::awkward_specs()) {
    if (s.rope_theta == 10000.0f && s.norm_eps == 1e-5f) specs.push_back(s);
  }
  for (const auto& spec : specs) {
    const bool tied = spec.tied;
    INFO("shape " << spec.name);
    const ModelWeights w = test::make_random_weights(spec);
    const std::string gguf = test::temp_path("cross.gguf"), bin = test::temp_path("cross.bin"),
                      tok = test::temp_path("cross.tok");
    test::write_gguf_model(w, gguf);
    test::write_llama2c_model(w, bin);
    test::write_llama2c_tokenizer(spec.vocab, tok);
    Model a = load_model(gguf);
    Model b = load_model(bin, tok);
    CHECK(b.format == "llama2c");
    CHECK(b.config().tied_embeddings == tied);
    CHECK(a.config().summary() == b.config().summary());
    // The weights themselves must be bit-identical: both files hold the same fp32 numbers.
    CHECK(a.weights.token_embd == b.weights.token_embd);
    CHECK(a.weights.output_norm == b.weights.output_norm);
    CHECK(a.weights.output == b.weights.output);
    REQUIRE(a.weights.layers.size() == b.weights.layers.size());
    for (std::size_t l = 0; l < a.weights.layers.size(); ++l) {
      const LayerWeights &x = a.weights.layers[l], &y = b.weights.layers[l];
      INFO("layer " << l);
      CHECK(x.attn_norm == y.attn_norm);
      CHECK(x.wq == y.wq);
      CHECK(x.wk == y.wk);
      CHECK(x.wv == y.wv);
      CHECK(x.wo == y.wo);
      CHECK(x.ffn_norm == y.ffn_norm);
      CHECK(x.w_gate == y.w_gate);
      CHECK(x.w_up == y.w_up);
      CHECK(x.w_down == y.w_down);
    }
    // The logits of equal weights may still differ in the last bit: Eigen's vectorised loops
    // peel differently for differently aligned buffers, which changes the summation order.
    const std::vector<int> tokens = {1, 5, 9, 3, spec.vocab - 1, 0, 17};
    const auto la = test::reference_logits(a.weights, tokens), lb = test::reference_logits(b.weights, tokens);
    const auto cmp = harness::compare_rows(la, lb, static_cast<std::size_t>(spec.vocab), 1e-5);
    INFO(cmp.report);
    CHECK(cmp.ok);
    CHECK(a.tokenizer->encode("t5 t9") == b.tokenizer->encode("t5 t9"));
    for (const auto& p : {gguf, bin, tok}) std::remove(p.c_str());
  }
}

TEST_CASE("llama2.c checkpoints that are damaged or mismatched are refused", "[model]") {
  test::RandomModelSpec spec{"damaged", 16, 1, 2, 2, 24, 40, 8, 10000.0f, 1e-5f, true, 3};
  const ModelWeights w = test::make_random_weights(spec);
  const std::string bin = test::temp_path("d.bin"), tok = test::temp_path("d.tok");
  test::write_llama2c_model(w, bin);
  test::write_llama2c_tokenizer(spec.vocab, tok);
  auto bytes = test::read_file(bin);

  SECTION("truncated") {
    test::write_file(bin, std::vector<std::uint8_t>(bytes.begin(), bytes.end() - 4));
    CHECK_THROWS_WITH(load_model(bin, tok), Contains(bin) && Contains("truncated"));
    test::write_file(bin, std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + 10));
    CHECK_THROWS_WITH(load_model(bin, tok), Contains("header alone is 28"));
  }
  SECTION("header that does not add up") {
    bytes[12] = 3;  // n_heads = 3 does not divide dim 16
    test::write_file(bin, bytes);
    CHECK_THROWS_WITH(load_model(bin, tok), Contains("not a positive multiple of n_heads 3"));
  }
  SECTION("tokenizer with fewer tokens than the model") {
    test::write_llama2c_tokenizer(spec.vocab - 1, tok);
    CHECK_THROWS_WITH(load_model(bin, tok), Contains(tok) && Contains("vocab_size is 40"));
  }
  SECTION("tokenizer with more tokens than the model") {
    test::write_llama2c_tokenizer(spec.vocab + 5, tok);
    CHECK_THROWS_WITH(load_model(bin, tok), Contains(tok) && Contains("larger than the model's"));
  }
  SECTION("no tokenizer given") {
    CHECK_THROWS_WITH(load_model(bin, ""), Contains("--tokenizer"));
  }
  SECTION("a versioned ak42 export") {
    std::memcpy(bytes.data(), "ak42", 4);
    test::write_file(bin, bytes);
    CHECK_THROWS_WITH(load_model(bin, tok), Contains("ak42"));
  }
  std::remove(bin.c_str());
  std::remove(tok.c_str());
}

TEST_CASE("GGUF models with a missing tensor or a duplicated key are refused", "[model]") {
  test::RandomModelSpec spec{"bad-gguf", 16, 1, 2, 1, 24, 40, 8, 10000.0f, 1e-5f, true, 4};
  const ModelWeights w = test::make_random_weights(spec);
  const std::string path = test::temp_path("bad.gguf");
  test::write_gguf_model(w, path);
  auto bytes = test::read_file(path);
  // Rename a tensor by changing one letter of its name: "ffn_up" -> "ffn_uq".
  const std::string needle = "blk.0.ffn_up.weight";
  auto it = std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end());
  REQUIRE(it != bytes.end());
  *(it + 11) = 'q';
  test::write_file(path, bytes);
  CHECK_THROWS_WITH(load_model(path), Contains(path) && Contains("missing tensor 'blk.0.ffn_up.weight'"));

  auto g = test::gguf_for(w);
  g.add_string("general.architecture", "gptneox");  // a second copy of the key
  g.write(path);
  CHECK_THROWS_WITH(load_model(path), Contains("'general.architecture' appears twice"));
  std::remove(path.c_str());
}

TEST_CASE("shapes that disagree with the config name the tensor", "[model]") {
  // The config says 3 kv heads (K is [24, 24]) but the file's K projection has one head's rows.
  test::RandomModelSpec spec{"shape", 24, 1, 3, 3, 24, 40, 8, 10000.0f, 1e-5f, true, 5};
  const ModelWeights w = test::make_random_weights(spec);
  test::GGUFWriter f;
  f.add_string("general.architecture", "llama");
  f.add_u32("llama.embedding_length", 24);
  f.add_u32("llama.block_count", 1);
  f.add_u32("llama.attention.head_count", 3);
  f.add_u32("llama.attention.head_count_kv", 3);
  f.add_u32("llama.feed_forward_length", 24);
  f.add_u32("llama.context_length", 8);
  f.add_u32("llama.vocab_size", 40);
  f.add_f32_tensor("token_embd.weight", 40, 24, w.token_embd);
  f.add_f32_tensor("output_norm.weight", 1, 24, w.output_norm);
  f.add_f32_tensor("blk.0.attn_norm.weight", 1, 24, w.layers[0].attn_norm);
  f.add_f32_tensor("blk.0.attn_q.weight", 24, 24, w.layers[0].wq);
  f.add_f32_tensor("blk.0.attn_k.weight", 8, 24,
                   std::vector<float>(w.layers[0].wk.begin(), w.layers[0].wk.begin() + 8 * 24));
  const std::string path = test::temp_path("shape.gguf");
  f.write(path);
  CHECK_THROWS_WITH(load_gguf_weights(GGUFFile(path)), Contains(path) &&
                                                           Contains("tensor 'blk.0.attn_k.weight' has shape [24, 8]") &&
                                                           Contains("needs [24, 24]"));
  std::remove(path.c_str());
}

TEST_CASE("a GGUF tokenizer whose size disagrees with the model is refused", "[model]") {
  test::RandomModelSpec spec{"vocab", 16, 1, 2, 1, 24, 41, 8, 10000.0f, 1e-5f, true, 6};
  const ModelWeights w = test::make_random_weights(spec);
  const std::string path = test::temp_path("vocab.gguf");
  test::gguf_for(w, /*tokenizer_vocab=*/40).write(path);
  CHECK_THROWS_WITH(load_model(path),
                    Contains(path) && Contains("tokenizer has 40 tokens") && Contains("vocab_size is 41"));
  test::gguf_for(w).write(path);
  CHECK_NOTHROW(load_model(path));
  std::remove(path.c_str());
}
