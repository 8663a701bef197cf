// Tokenizers against ids from independent implementations (SentencePiece and Hugging Face
// `tokenizers`, recorded by tests/reference/), plus decoding and UTF-8 streaming.
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/gguf.h"
#include "common/tokenizer.h"
#include "common/tokenizer_bpe.h"
#include "common/unicode.h"
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

namespace {
// A GGUF holding only a tokenizer; `edit` adds or overrides keys before the defaults are written.
struct TokenizerFile {
  std::string model = "gpt2";
  std::vector<std::string> tokens;
  std::vector<std::int32_t> types;
  std::vector<float> scores;
  std::vector<std::string> merges;
  std::function<void(test::GGUFWriter&)> extra;
};
std::unique_ptr<Tokenizer> load(const TokenizerFile& t) {
  test::GGUFWriter g;
  g.add_string("tokenizer.ggml.model", t.model);
  g.add_string_array("tokenizer.ggml.tokens", t.tokens);
  if (!t.types.empty()) g.add_i32_array("tokenizer.ggml.token_type", t.types);
  if (!t.scores.empty()) g.add_f32_array("tokenizer.ggml.scores", t.scores);
  if (t.model == "gpt2") g.add_string_array("tokenizer.ggml.merges", t.merges);
  if (t.extra) t.extra(g);
  const auto bytes = g.bytes();
  GGUFFile f(bytes.data(), bytes.size(), "tok.gguf");
  return load_gguf_tokenizer(f);
}
// The 256 byte stand-ins of byte-level BPE (GPT-2's table), then `more`.
std::vector<std::string> bpe_tokens(const std::vector<std::string>& more) {
  std::vector<std::string> out;
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    out.push_back(unicode::encode_utf8(printable ? static_cast<char32_t>(b) : next++));
  }
  out.insert(out.end(), more.begin(), more.end());
  return out;
}
std::vector<std::uint8_t> u64_bytes(std::uint64_t v) {
  std::vector<std::uint8_t> out(8);
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
  return out;
}
// A SentencePiece vocabulary with UNK and every byte token, then `more`.
TokenizerFile spm_file(const std::vector<std::string>& more) {
  TokenizerFile t;
  t.model = "llama";
  t.tokens = {"<unk>", "<s>", "</s>"};
  t.types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    t.tokens.emplace_back(name);
    t.types.push_back(6);
  }
  for (const auto& m : more) {
    t.tokens.push_back(m);
    t.types.push_back(1);
  }
  t.scores.assign(t.tokens.size(), 0.0f);
  t.extra = [](test::GGUFWriter& g) { g.add_u32("tokenizer.ggml.unknown_token_id", 0); };
  return t;
}
}  // namespace

TEST_CASE("a well-formed byte-level vocabulary built here loads and round-trips", "[tokenizer]") {
  TokenizerFile t;
  t.tokens = bpe_tokens({"ab", "abc"});
  t.merges = {"a b", "ab c"};
  auto tok = load(t);
  CHECK(tok->encode("abcab") == std::vector<int>{257, 256});
  CHECK(tok->decode(tok->encode("x\xF0 abc")) == "x\xEF\xBF\xBD abc");
}

TEST_CASE("tokenizer metadata is validated at load, naming the field, the index and the value", "[tokenizer]") {
  SECTION("a BYTE-typed token that is not <0xNN>") {
    auto t = spm_file({"abc"});
    t.types.back() = 6;
    const std::string idx = std::to_string(t.tokens.size() - 1);
    CHECK_THROWS_WITH(load(t), Contains("tok.gguf") && Contains("tokenizer.ggml.token_type[" + idx + "] is 6") &&
                                   Contains("tokenizer.ggml.tokens[" + idx + "] is 'abc'"));
    t.tokens.back() = "<0xZZ>";
    CHECK_THROWS_WITH(load(t), Contains("'<0xZZ>', not of the form <0xNN>"));
    t.tokens.back() = "<0x4a>";  // lower-case hex is a byte token too
    CHECK(load(t)->token_bytes(static_cast<int>(t.tokens.size()) - 1, 5) == "J");
  }
  SECTION("token types outside 0..6, and a type array of the wrong length") {
    auto t = spm_file({});
    t.types[5] = 7;
    CHECK_THROWS_WITH(load(t), Contains("tokenizer.ggml.token_type[5] is 7"));
    t.types[5] = -1;
    CHECK_THROWS_WITH(load(t), Contains("tokenizer.ggml.token_type[5] is -1"));
    t.types.pop_back();
    CHECK_THROWS_WITH(load(t), Contains("token_type has 258 entries but tokenizer.ggml.tokens has 259"));
  }
  SECTION("token ids outside the vocabulary or the int range, at any integer width") {
    TokenizerFile t;
    t.tokens = bpe_tokens({});
    t.extra = [](test::GGUFWriter& g) { g.add_raw("tokenizer.ggml.bos_token_id", 10, u64_bytes((1ull << 32) + 1)); };
    CHECK_THROWS_WITH(load(t), Contains("tokenizer.ggml.bos_token_id is 4294967297, outside the vocabulary of 256"));
    t.extra = [](test::GGUFWriter& g) { g.add_raw("tokenizer.ggml.eos_token_id", 11, u64_bytes(~0ull - 4)); };
    CHECK_THROWS_WITH(load(t), Contains("tokenizer.ggml.eos_token_id is -5"));
    t.extra = [](test::GGUFWriter& g) { g.add_u32("tokenizer.ggml.unknown_token_id", 256); };
    CHECK_THROWS_WITH(load(t), Contains("tokenizer.ggml.unknown_token_id is 256"));
    t.extra = [](test::GGUFWriter& g) { g.add_i32("tokenizer.ggml.bos_token_id", -1); };  // -1: none
    CHECK(load(t)->bos_id() == -1);
  }
  SECTION("malformed merges") {
    TokenizerFile t;
    t.tokens = bpe_tokens({"ab"});
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"ab", "separated by a space"},
        {" b", "two non-empty tokens"},
        {"a ", "two non-empty tokens"},
        {"a zz", "right half 'zz' is not a token"},
        {"zz a", "left half 'zz' is not a token"},
        {"b a", "merged piece 'ba' is not a token"},
        {"a b c", "right half 'b c' is not a token"},
    };
    for (const auto& [merge, why] : bad) {
      t.merges = {"a b", merge};
      INFO(merge);
      CHECK_THROWS_WITH(
          load(t), Contains("tok.gguf") && Contains("tokenizer.ggml.merges[1] is '" + merge + "'") && Contains(why));
    }
  }
  SECTION("a byte that no token stands for, and no UNK") {
    TokenizerFile t;
    t.tokens = bpe_tokens({});
    t.tokens[0x80] = "<unk>";  // byte 0x80's stand-in is gone
    CHECK_THROWS_WITH(load(t), Contains("byte 0x80 has no token") && Contains("unknown_token_id"));
    t.extra = [](test::GGUFWriter& g) { g.add_u32("tokenizer.ggml.unknown_token_id", 0x80); };
    auto tok = load(t);
    CHECK(tok->encode("\x80") == std::vector<int>{0x80});                   // UNK, never -1
    CHECK(tok->encode("\xC4\x80") == std::vector<int>{0x80 + 0x44, 0x80});  // Ä's stand-in for 0xC4, then UNK

    auto s = spm_file({"a"});
    s.tokens[3 + 0x80] = "x";  // <0x80> is gone
    s.types[3 + 0x80] = 1;
    s.extra = nullptr;  // and no UNK id
    CHECK_THROWS_WITH(load(s), Contains("byte 0x80 has no byte token (<0x80>)"));
  }
  SECTION("scores: not one per token, or not finite") {
    auto t = spm_file({});
    t.scores[7] = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH(load(t), Contains("tokenizer.ggml.scores[7] is nan"));
    t.scores[7] = -std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH(load(t), Contains("tokenizer.ggml.scores[7] is -inf"));
  }
  SECTION("an empty vocabulary") {
    TokenizerFile t;
    CHECK_THROWS_WITH(load(t), Contains("tokenizer.ggml.tokens is empty"));
  }
  SECTION("duplicate pieces are accepted, as ggml accepts them: text maps to the first id") {
    auto t = spm_file({"\xE2\x96\x81", "h", "i", "hi", "\xE2\x96\x81hi", "\xE2\x96\x81hi"});
    auto tok = load(t);
    const int first = static_cast<int>(t.tokens.size()) - 2;
    CHECK(tok->encode("hi") == std::vector<int>{first});
    CHECK(tok->decode({first + 1}) == "hi");
  }
}

TEST_CASE("llama2.c tokenizer.bin: a piece that looks like <0x..> but is not hex is an ordinary piece", "[tokenizer]") {
  const std::string path = test::temp_path("tok_badhex.bin");
  test::write_llama2c_tokenizer(8, path);
  // Rewrite token 5 ("t5") as "<0xZZ>": same file layout, longer piece.
  std::vector<std::uint8_t> bytes;
  auto put = [&](const void* p, std::size_t n) {
    bytes.insert(bytes.end(), static_cast<const std::uint8_t*>(p), static_cast<const std::uint8_t*>(p) + n);
  };
  const std::int32_t max_len = 8;
  put(&max_len, 4);
  for (int id = 0; id < 8; ++id) {
    const std::string piece = id == 5 ? "<0xZZ>" : (id == 6 ? "<0x41>" : std::string("t").append(std::to_string(id)));
    const float score = static_cast<float>(-id);
    const auto len = static_cast<std::int32_t>(piece.size());
    put(&score, 4);
    put(&len, 4);
    put(piece.data(), piece.size());
  }
  test::write_file(path, bytes);
  auto tok = load_llama2c_tokenizer(path, 8);
  CHECK(tok->decode({5}) == "<0xZZ>");  // once: internal error "stoi"
  CHECK(tok->decode({6}) == "A");
  std::remove(path.c_str());

  // A non-finite score is refused with the token's index.
  bytes.clear();
  put(&max_len, 4);
  for (int id = 0; id < 4; ++id) {
    const std::string piece = "p" + std::to_string(id);
    const float score = id == 3 ? std::numeric_limits<float>::infinity() : 0.0f;
    const auto len = static_cast<std::int32_t>(piece.size());
    put(&score, 4);
    put(&len, 4);
    put(piece.data(), piece.size());
  }
  test::write_file(path, bytes);
  CHECK_THROWS_WITH(load_llama2c_tokenizer(path, 4), Contains(path) && Contains("scores[3] is inf"));
  CHECK_THROWS_WITH(load_llama2c_tokenizer(path, -3), Contains("vocab_size is -3"));
  std::remove(path.c_str());
}
