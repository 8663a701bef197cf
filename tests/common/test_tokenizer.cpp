// Tokenizers against ids from independent implementations (SentencePiece and Hugging Face
// `tokenizers`, recorded by tests/reference/), plus decoding and UTF-8 streaming.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/gguf.h"
#include "common/tokenizer.h"
#include "common/tokenizer_bpe.h"
#include "tests/helpers/random_model.h"

using namespace llm;
using Catch::Matchers::Contains;

namespace {
struct GoldenCase {
  std::string text;
  std::vector<int> ids;
};
std::vector<GoldenCase> golden(const std::string& file) {
  std::ifstream in(test::repo_path(file));
  REQUIRE(in.good());
  const auto j = nlohmann::json::parse(in);
  std::vector<GoldenCase> out;
  for (const auto& c : j) out.push_back({c["text"].get<std::string>(), c["ids"].get<std::vector<int>>()});
  REQUIRE(out.size() >= 10);
  return out;
}
std::string show(const std::vector<int>& ids) {
  std::string s;
  for (int id : ids) s += std::to_string(id) + " ";
  return s;
}
void check_golden(const Tokenizer& tok, const std::vector<GoldenCase>& cases) {
  for (const auto& c : cases) {
    INFO("text: \"" << c.text << "\"");
    const auto got = tok.encode(c.text);
    INFO("got:  " << show(got));
    INFO("want: " << show(c.ids));
    CHECK(got == c.ids);
    CHECK(tok.decode(c.ids) == c.text);
  }
}
}  // namespace

TEST_CASE("SentencePiece BPE (llama2.c tokenizer.bin) matches sentencepiece", "[tokenizer]") {
  auto tok = load_llama2c_tokenizer(test::repo_path("datasets/tokenizers/spm_tiny_tokenizer.bin"), 512);
  check_golden(*tok, golden("datasets/tokenizers/golden_spm_tiny.json"));
  CHECK(tok->bos_id() == 1);
  CHECK(tok->eos_id() == 2);
  CHECK(tok->encode_prompt("hi").front() == 1);
}

TEST_CASE("SentencePiece BPE from GGUF metadata matches sentencepiece", "[tokenizer]") {
  GGUFFile f(test::repo_path("datasets/test/tiny_random.gguf"));
  auto tok = load_gguf_tokenizer(f);
  check_golden(*tok, golden("datasets/tokenizers/golden_spm_tiny.json"));
  CHECK(tok->encode("<|im_start|>").size() == 2);  // the dummy-prefix "▁", then the symbol
  CHECK(tok->encode("<|im_start|>")[1] == tok->find("<|im_start|>"));
}

TEST_CASE("byte-level BPE (SmolLM2's vocabulary) matches Hugging Face tokenizers", "[tokenizer]") {
  GGUFFile f(test::repo_path("datasets/tokenizers/smollm2_tokenizer.gguf"));
  auto tok = load_gguf_tokenizer(f);
  CHECK(tok->vocab_size() == 49152);
  check_golden(*tok, golden("datasets/tokenizers/golden_smollm2.json"));
  // BOS/EOS come from the file (SmolLM2: 1 = <|im_start|>, 2 = <|im_end|>), and the chat
  // markers written in text are single tokens.
  CHECK(tok->bos_id() == 1);
  CHECK(tok->eos_id() == 2);
  CHECK(tok->encode("<|im_start|>user") == std::vector<int>{1, tok->encode("user")[0]});
  CHECK(std::find(tok->stop_ids().begin(), tok->stop_ids().end(), 2) != tok->stop_ids().end());
}

TEST_CASE("the byte-level pre-tokenizer splits like the GPT-2 regex with single digits", "[tokenizer]") {
  GGUFFile f(test::repo_path("datasets/tokenizers/smollm2_tokenizer.gguf"));
  auto tok = load_gguf_tokenizer(f);
  const auto& bpe = dynamic_cast<const BpeTokenizer&>(*tok);
  auto chunks = [&](std::string_view s) {
    std::vector<std::string> out;
    for (auto c : bpe.pre_tokenize(s)) out.emplace_back(c);
    return out;
  };
  CHECK(chunks("Hello world") == std::vector<std::string>{"Hello", " world"});
  CHECK(chunks("a  b") == std::vector<std::string>{"a", " ", " b"});
  CHECK(chunks("x 123") == std::vector<std::string>{"x", " ", "1", "2", "3"});
  CHECK(chunks("it's") == std::vector<std::string>{"it", "'s"});
  CHECK(chunks("end  ") == std::vector<std::string>{"end", "  "});
  CHECK(chunks("!!?? ok") == std::vector<std::string>{"!!??", " ok"});
}

TEST_CASE("streaming decode holds back a character split across byte tokens", "[tokenizer]") {
  GGUFFile f(test::repo_path("datasets/test/tiny_random.gguf"));
  auto tok = load_gguf_tokenizer(f);
  // An emoji the 512-piece vocabulary lacks, so it falls back to four byte tokens.
  std::string emoji;
  for (const char* e : {"\xF0\x9F\x90\xA2", "\xF0\x9F\x8C\xB5", "\xF0\x9F\xA6\x80"}) {  // 🐢 🌵 🦀
    if (tok->find(e) < 0) {
      emoji = e;
      break;
    }
  }
  REQUIRE(!emoji.empty());
  const auto ids = tok->encode(emoji);
  REQUIRE(ids.size() >= 4);  // "▁" and the four byte tokens
  TextDecoder d(*tok, tok->bos_id());
  std::string out;
  for (std::size_t i = 0; i + 1 < ids.size(); ++i) {
    out += d.push(ids[i]);
    CHECK(out.find('\xF0') == std::string::npos);  // never half a character
  }
  out += d.push(ids.back());
  CHECK(out == emoji);
  CHECK(d.flush().empty());

  // A lone continuation byte at the end is replaced, not passed through.
  TextDecoder bad(*tok);
  CHECK(bad.push(tok->find("<0xF0>")).empty());
  CHECK(bad.flush() == "\xEF\xBF\xBD");
}

TEST_CASE("tokenizer files that are malformed are refused", "[tokenizer]") {
  const std::string path = test::temp_path("tok.bin");
  test::write_file(path, {1, 2});
  CHECK_THROWS_WITH(load_llama2c_tokenizer(path, 10), Contains(path) && Contains("truncated"));
  test::write_file(path, {0, 0, 0, 0});
  CHECK_THROWS_WITH(load_llama2c_tokenizer(path, 10), Contains("max_token_length is 0"));
  std::remove(path.c_str());

  test::GGUFWriter g;
  g.add_string("tokenizer.ggml.model", "rwkv");
  g.add_string_array("tokenizer.ggml.tokens", {"a", "b"});
  const auto bytes = g.bytes();
  GGUFFile f(bytes.data(), bytes.size(), "t.gguf");
  CHECK_THROWS_WITH(load_gguf_tokenizer(f), Contains("t.gguf") && Contains("'rwkv'"));

  test::GGUFWriter h;
  h.add_string("tokenizer.ggml.model", "llama");
  h.add_string_array("tokenizer.ggml.tokens", {"a", "b", "c"});
  h.add_f32_array("tokenizer.ggml.scores", {0, 0});
  const auto hb = h.bytes();
  GGUFFile hf(hb.data(), hb.size(), "s.gguf");
  CHECK_THROWS_WITH(load_gguf_tokenizer(hf), Contains("tokenizer.ggml.scores has 2 entries") && Contains("has 3"));
}
