// Model files: config read from the file, GGUF and llama2.c agreeing on the same weights, and
// every way a model file can disagree with itself.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "common/error.h"
#include "common/gguf.h"
#include "common/model_weights.h"
#include "kernels/cpu/dequantize.h"
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

namespace {
test::RandomModelSpec small_spec(bool tied = true) {
  return {"finite", 32, 1, 2, 1, 32, 40, 8, 10000.0f, 1e-5f, tied, 11};
}
std::vector<std::uint8_t> as_f16(const std::vector<float>& v) {
  std::vector<std::uint8_t> out(v.size() * 2);
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::uint16_t h = cpu::fp32_to_fp16(v[i]);
    std::memcpy(out.data() + 2 * i, &h, 2);
  }
  return out;
}
// Q8_0 blocks of 32: fp16 scale d = max|x| / 127, then round(x / d) as int8.
std::vector<std::uint8_t> as_q8_0(const std::vector<float>& v) {
  std::vector<std::uint8_t> out;
  for (std::size_t b = 0; b < v.size(); b += 32) {
    float amax = 0.0f;
    for (std::size_t j = 0; j < 32; ++j) amax = std::max(amax, std::abs(v[b + j]));
    const float d = amax / 127.0f;
    const std::uint16_t h = cpu::fp32_to_fp16(d);
    out.push_back(static_cast<std::uint8_t>(h & 0xFF));
    out.push_back(static_cast<std::uint8_t>(h >> 8));
    for (std::size_t j = 0; j < 32; ++j)
      out.push_back(static_cast<std::uint8_t>(static_cast<std::int8_t>(d == 0.0f ? 0 : std::lround(v[b + j] / d))));
  }
  return out;
}
}  // namespace

TEST_CASE("non-finite weights are refused at load, naming the tensor and the first bad element", "[model]") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const ModelWeights good = test::make_random_weights(small_spec());
  const std::string path = test::temp_path("finite.gguf");
  SECTION("F32: NaN in a matrix, with its row and column") {
    ModelWeights w = good;
    w.layers[0].wq[70] = nan;   // wq is [32, 32]: row 2, column 6
    w.layers[0].wq[900] = inf;  // a later one is not the one reported
    test::write_gguf_model(w, path);
    CHECK_THROWS_WITH(load_model(path), Contains(path) && Contains("tensor 'blk.0.attn_q.weight' element 70") &&
                                            Contains("(row 2, column 6)") && Contains("is nan"));
  }
  SECTION("F32: -Inf in a norm vector") {
    ModelWeights w = good;
    w.output_norm[31] = -inf;
    test::write_gguf_model(w, path);
    CHECK_THROWS_WITH(load_model(path), Contains("tensor 'output_norm.weight' element 31 is -inf") && !Contains("row"));
  }
  SECTION("F16: Inf") {
    std::vector<float> up = good.layers[0].w_up;
    up[33] = inf;
    auto g = test::gguf_for(good);
    g.replace_tensor("blk.0.ffn_up.weight", 1, as_f16(up));
    g.write(path);
    CHECK_THROWS_WITH(load_model(path), Contains(path) && Contains("tensor 'blk.0.ffn_up.weight' element 33") &&
                                            Contains("(row 1, column 1) is inf"));
  }
  SECTION("Q8_0: a NaN scale is named as the block's scale") {
    auto q = as_q8_0(good.layers[0].wk);
    const std::uint16_t nan16 = 0x7E00;
    std::memcpy(q.data() + 3 * 34, &nan16, 2);  // block 3 = elements 96..127 = row 3
    auto g = test::gguf_for(good);
    g.replace_tensor("blk.0.attn_k.weight", 8, q);
    g.write(path);
    CHECK_THROWS_WITH(load_model(path), Contains(path) && Contains("tensor 'blk.0.attn_k.weight' element 96") &&
                                            Contains("(row 3, column 0) is nan") &&
                                            Contains("its Q8_0 block 3 has scale d = nan"));
    // The same tensor with its real scales loads.
    g.replace_tensor("blk.0.attn_k.weight", 8, as_q8_0(good.layers[0].wk));
    g.write(path);
    CHECK_NOTHROW(load_model(path));
  }
  SECTION("llama2.c: the tensor by llama2.c's name, its layer and file offset") {
    ModelWeights w = test::make_random_weights(small_spec(/*tied=*/false));
    w.layers[0].w_down[5] = nan;
    w.output[0] = inf;
    const std::string bin = test::temp_path("finite.bin"), tok = test::temp_path("finite.tok");
    test::write_llama2c_model(w, bin);
    test::write_llama2c_tokenizer(40, tok);
    // w2 comes after the embedding (40x32), rms_att (32), wq, wk, wv, wo, rms_ffn and w1.
    const std::size_t offset = 28 + 4 * (40 * 32 + 32 + 32 * 32 + 16 * 32 * 2 + 32 * 32 + 32 + 32 * 32 + 5);
    CHECK_THROWS_WITH(load_model(bin, tok), Contains(bin) && Contains("tensor 'w2[layer 0]' element 5") &&
                                                Contains("is nan") &&
                                                Contains("(file offset " + std::to_string(offset) + ")"));
    for (const auto& p : {bin, tok}) std::remove(p.c_str());
  }
  std::remove(path.c_str());
}

TEST_CASE("llama2.c headers: every field range-checked before any arithmetic", "[model]") {
  test::RandomModelSpec spec{"header", 16, 1, 2, 2, 24, 40, 8, 10000.0f, 1e-5f, true, 3};
  const std::string bin = test::temp_path("h.bin"), tok = test::temp_path("h.tok");
  test::write_llama2c_model(test::make_random_weights(spec), bin);
  test::write_llama2c_tokenizer(spec.vocab, tok);
  const auto good = test::read_file(bin);
  auto with_field = [&](int field, std::int32_t value) {
    auto bytes = good;
    std::memcpy(bytes.data() + 4 * field, &value, 4);
    test::write_file(bin, bytes);
  };
  // A plausible header that does not match the size is a damaged llama2.c file; an implausible
  // one is not a llama2.c file at all.
  SECTION("vocab_size INT_MIN (negating it as an int overflows)") {
    with_field(5, std::numeric_limits<std::int32_t>::min());
    CHECK_THROWS_WITH(load_model(bin, tok), Contains(bin) && Contains("not a model file") &&
                                                Contains("vocab_size=-2147483648") &&
                                                Contains("vocab_size is -2147483648 (its magnitude must be between 1 "
                                                         "and 4194304"));
  }
  SECTION("vocab_size 0") {
    with_field(5, 0);
    CHECK_THROWS_WITH(load_model(bin, tok), Contains("vocab_size is 0"));
  }
  SECTION("huge dimensions") {
    with_field(0, std::numeric_limits<std::int32_t>::max());
    CHECK_THROWS_WITH(load_model(bin, tok), Contains(bin) && Contains("dim=2147483647") &&
                                                Contains("dim is 2147483647 (must be between 1 and 65536)"));
    with_field(1, std::numeric_limits<std::int32_t>::max());
    CHECK_THROWS_WITH(load_model(bin, tok), Contains("hidden_dim is 2147483647 (must be between 1 and 262144)"));
    with_field(6, -5);
    CHECK_THROWS_WITH(load_model(bin, tok), Contains("seq_len is -5 (must be between 1 and 16777216)"));
    with_field(4, 0);
    CHECK_THROWS_WITH(load_model(bin, tok), Contains("n_kv_heads is 0 (must be between 1 and 1024)"));
  }
  SECTION("a plausible header that implies another size") {
    with_field(2, 2);  // two layers: the file holds one
    CHECK_THROWS_WITH(load_model(bin, tok), Contains(bin) && Contains("n_layers=2") &&
                                                Contains("file size is " + std::to_string(good.size())) &&
                                                Contains("truncated") && !Contains("not a model file"));
    auto longer = good;
    longer.resize(good.size() + 4);
    test::write_file(bin, longer);
    CHECK_THROWS_WITH(load_model(bin, tok), Contains("trailing bytes"));
  }
  for (const auto& p : {bin, tok}) std::remove(p.c_str());
}

TEST_CASE("a file that is neither GGUF nor llama2.c is 'not a model file'", "[model]") {
  SECTION("README.md") {
    // Any text reads as int32 fields near 2^30 or more: far past every limit.
    const std::string readme = test::repo_path("README.md");
    const auto text = test::read_file(readme);
    REQUIRE(text.size() >= 28);
    std::int32_t dim;
    std::memcpy(&dim, text.data(), 4);
    CHECK_THROWS_WITH(load_model(readme, ""),
                      Contains(readme + ": not a model file (neither GGUF") && Contains("nor a llama2.c checkpoint") &&
                          Contains("header: dim=" + std::to_string(dim)) &&
                          Contains("dim is " + std::to_string(dim) + " (must be between 1 and 65536)"));
  }
  SECTION("empty and tiny files") {
    const std::string p = test::temp_path("tiny.bin");
    test::write_file(p, {});
    CHECK_THROWS_WITH(load_model(p), Contains(p + ": not a model file") && Contains("an empty file"));
    test::write_file(p, {'h', 'i', '\n'});
    CHECK_THROWS_WITH(load_model(p), Contains("not a model file") && Contains("starts with 'hi?'") &&
                                         Contains("3 bytes, but a llama2.c header alone is 28"));
    std::remove(p.c_str());
  }
  SECTION("a GGUF with a damaged magic is a damaged GGUF, whatever its name") {
    auto bytes = test::read_file(test::repo_path("datasets/test/tiny_random.gguf"));
    const std::string p = test::temp_path("damaged.bin");
    for (const char* magic : {"GGUG", "FUGG"}) {
      std::memcpy(bytes.data(), magic, 4);
      test::write_file(p, bytes);
      CHECK_THROWS_WITH(load_model(p),
                        Contains(p + ": damaged GGUF magic") && Contains(std::string("'") + magic + "'"));
    }
    std::remove(p.c_str());
  }
  SECTION("a directory and a missing file") {
    CHECK_THROWS_WITH(load_model("/tmp"), Contains("/tmp") && Contains("not a regular file"));
    CHECK_THROWS_WITH(load_model("/no/such.gguf"), Contains("/no/such.gguf") && Contains("cannot open"));
  }
}

TEST_CASE("a GGUF model key of the wrong type names the key and both types", "[model]") {
  const ModelWeights w = test::make_random_weights(small_spec());
  auto g = test::gguf_for(w);
  g.add_string("llama.vocab_size", "forty");
  const std::string path = test::temp_path("type.gguf");
  g.write(path);
  CHECK_THROWS_WITH(load_model(path),
                    Contains(path + ": metadata key 'llama.vocab_size' has type STRING, expected an integer"));
  std::remove(path.c_str());
}

TEST_CASE("a GGUF head count that does not divide the width, without a key_length, is refused", "[model]") {
  test::GGUFWriter g;
  g.add_string("general.architecture", "llama");
  g.add_u32("llama.embedding_length", 32);
  g.add_u32("llama.block_count", 1);
  g.add_u32("llama.attention.head_count", 5);  // 32 is not a multiple of 5
  g.add_u32("llama.feed_forward_length", 32);
  g.add_u32("llama.context_length", 8);
  const std::string path = test::temp_path("heads.gguf");
  g.write(path);
  CHECK_THROWS_WITH(load_gguf_weights(GGUFFile(path)),
                    Contains(path + ": llama.embedding_length 32 is not a multiple of "
                                    "attention.head_count 5"));
  std::remove(path.c_str());
}

TEST_CASE("fuzz_llama2c's committed seeds are valid models, so the fuzzer starts from loading ones", "[model]") {
  for (const char* name : {"tied_spm_tiny.seed", "untied_gqa.seed"}) {
    INFO(name);
    const auto seed = test::read_file(test::repo_path(std::string("tests/fuzz/seeds_llama2c/") + name));
    REQUIRE(seed.size() > 4);
    std::uint32_t n;
    std::memcpy(&n, seed.data(), 4);
    REQUIRE(n <= seed.size() - 4);
    const std::string bin = test::temp_path("seed.bin"), tok = test::temp_path("seed.tok");
    test::write_file(bin, std::vector<std::uint8_t>(seed.begin() + 4, seed.begin() + 4 + n));
    test::write_file(tok, std::vector<std::uint8_t>(seed.begin() + 4 + n, seed.end()));
    Model m = load_model(bin, tok);
    CHECK(m.format == "llama2c");
    CHECK_FALSE(m.tokenizer->encode("ab a").empty());
    for (const auto& p : {bin, tok}) std::remove(p.c_str());
  }
}
