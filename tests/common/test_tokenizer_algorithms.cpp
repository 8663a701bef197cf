// The tokenizers' fast algorithms against simple quadratic references kept here (and only here):
// byte-level BPE merging (priority queue vs "merge every occurrence of the best pair" as the
// engine did before, and vs "merge the best, leftmost pair, one at a time"), SentencePiece
// merging, special-token splitting (Aho-Corasick vs trying every piece at every byte), on many
// random texts over small random vocabularies. Then the time a 1 MB prompt takes.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <limits>
#include <map>
#include <random>
#include <set>

#include "common/gguf.h"
#include "common/tokenizer.h"
#include "common/tokenizer_bpe.h"
#include "common/tokenizer_spm.h"
#include "common/unicode.h"
#include "tests/helpers/random_model.h"

using namespace llm;

namespace {

// ---- references ------------------------------------------------------------------------------

/// Special-token splitting as the engine first did it: at each byte, try every piece, longest
/// first; on a hit, jump past it.
std::vector<std::pair<int, std::string>> reference_split(const Vocabulary& v, std::string_view text, bool control_too) {
  std::vector<int> specials;
  for (std::size_t id = 0; id < v.pieces.size(); ++id) {
    const TokenKind k = v.kinds[id];
    if ((k == TokenKind::UserDefined || (control_too && k == TokenKind::Control)) && !v.pieces[id].empty())
      specials.push_back(static_cast<int>(id));
  }
  // Longest first; among equal pieces the lowest id (the one text maps to).
  std::stable_sort(specials.begin(), specials.end(), [&](int a, int b) {
    return v.pieces[static_cast<std::size_t>(a)].size() > v.pieces[static_cast<std::size_t>(b)].size();
  });
  std::vector<std::pair<int, std::string>> out;
  std::size_t start = 0, i = 0;
  while (i < text.size()) {
    int hit = -1;
    for (int id : specials) {
      const std::string& p = v.pieces[static_cast<std::size_t>(id)];
      if (text.compare(i, p.size(), p) == 0) {
        hit = id;
        break;
      }
    }
    if (hit < 0) {
      ++i;
      continue;
    }
    if (i > start) out.emplace_back(-1, std::string(text.substr(start, i - start)));
    out.emplace_back(hit, v.pieces[static_cast<std::size_t>(hit)]);
    i += v.pieces[static_cast<std::size_t>(hit)].size();
    start = i;
  }
  if (start < text.size()) out.emplace_back(-1, std::string(text.substr(start)));
  return out;
}

int first_id(const Vocabulary& v, const std::string& piece) {
  for (std::size_t id = 0; id < v.pieces.size(); ++id)
    if (v.pieces[id] == piece) return static_cast<int>(id);
  return -1;
}

/// GPT-2's byte-to-unicode stand-ins (printable Latin-1 bytes are themselves).
std::string byte_char(unsigned char b) {
  int next = 256;
  for (int c = 0; c < 256; ++c) {
    const bool printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
    if (c == b) return unicode::encode_utf8(static_cast<char32_t>(printable ? c : next));
    if (!printable) ++next;
  }
  return "";
}

enum class BpeOrder { AllOccurrences, OneAtATime };

/// Byte-level BPE of one pre-token chunk by rescanning all pairs after every merge: O(n^2).
/// AllOccurrences merges every occurrence of the best pair left to right in one pass (the
/// engine's algorithm before the priority queue); OneAtATime merges only the leftmost (the
/// semantics of the priority-queue algorithm in llama.cpp and Hugging Face).
void reference_bpe_chunk(const Vocabulary& v, std::string_view chunk, BpeOrder order, std::vector<int>& out) {
  std::map<std::string, int> rank;
  for (std::size_t r = 0; r < v.merges.size(); ++r) rank.emplace(v.merges[r], static_cast<int>(r));
  std::vector<std::string> parts;
  for (unsigned char b : chunk) parts.push_back(byte_char(b));
  while (parts.size() > 1) {
    int best_rank = std::numeric_limits<int>::max();
    std::size_t best = 0;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      auto it = rank.find(parts[i] + " " + parts[i + 1]);
      if (it != rank.end() && it->second < best_rank) {
        best_rank = it->second;
        best = i;
      }
    }
    if (best_rank == std::numeric_limits<int>::max()) break;
    if (order == BpeOrder::OneAtATime) {
      parts[best] += parts[best + 1];
      parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(best) + 1);
      continue;
    }
    const std::string left = parts[best], right = parts[best + 1];
    std::vector<std::string> merged;
    for (std::size_t i = 0; i < parts.size(); ++i) {
      if (i + 1 < parts.size() && parts[i] == left && parts[i + 1] == right) {
        merged.push_back(left + right);
        ++i;
      } else {
        merged.push_back(parts[i]);
      }
    }
    parts.swap(merged);
  }
  for (const auto& p : parts) {
    const int id = first_id(v, p);
    out.push_back(id >= 0 ? id : v.unk_id);
  }
}

std::vector<int> reference_bpe(const BpeTokenizer& tok, const Vocabulary& v, std::string_view text, BpeOrder order) {
  std::vector<int> out;
  for (const auto& [id, part] : reference_split(v, text, /*control_too=*/true)) {
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (auto chunk : tok.pre_tokenize(part)) reference_bpe_chunk(v, chunk, order, out);
  }
  return out;
}

/// SentencePiece BPE by rescanning all pairs after every merge: the best score, leftmost first.
std::vector<int> reference_spm(const Vocabulary& v, std::string_view text) {
  const std::string space = "\xE2\x96\x81";
  std::vector<int> out;
  if (text.empty()) return out;
  std::string normalized = v.add_space_prefix ? space : "";
  for (char c : text) normalized += (c == ' ') ? space : std::string(1, c);
  for (const auto& [special, seg] : reference_split(v, normalized, /*control_too=*/false)) {
    if (special >= 0) {
      out.push_back(special);
      continue;
    }
    std::vector<std::string> parts;
    for (const auto& ch : unicode::decode_utf8(seg)) parts.push_back(seg.substr(ch.offset, ch.len));
    while (parts.size() > 1) {
      float best_score = -std::numeric_limits<float>::infinity();
      std::size_t best = parts.size();
      for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
        if (first_id(v, parts[i]) < 0 || first_id(v, parts[i + 1]) < 0) continue;  // byte fallback never merges
        const int id = first_id(v, parts[i] + parts[i + 1]);
        if (id < 0 || v.kinds[static_cast<std::size_t>(id)] == TokenKind::Unused) continue;
        if (best == parts.size() || v.scores[static_cast<std::size_t>(id)] > best_score) {
          best_score = v.scores[static_cast<std::size_t>(id)];
          best = i;
        }
      }
      if (best == parts.size()) break;
      parts[best] += parts[best + 1];
      parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    }
    for (const auto& p : parts) {
      const int id = first_id(v, p);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
      for (unsigned char b : p) {
        char name[8];
        std::snprintf(name, sizeof(name), "<0x%02X>", b);
        const int bid = first_id(v, name);
        out.push_back(bid >= 0 ? bid : v.unk_id);
      }
    }
  }
  return out;
}

// ---- random vocabularies and texts -----------------------------------------------------------

// Texts are drawn from a few bytes so that pieces and merges recur: letters, a digit, space,
// punctuation, and the two bytes of "é" (which also occur alone: invalid UTF-8).
const std::string kAlphabet = std::string("aab c1!") + "\xC3\xA9";

std::string random_text(std::mt19937& rng, std::size_t max_len) {
  std::uniform_int_distribution<std::size_t> len(0, max_len);
  std::uniform_int_distribution<std::size_t> pick(0, kAlphabet.size() - 1);
  std::string s;
  for (std::size_t n = len(rng); s.size() < n;) s += kAlphabet[pick(rng)];
  return s;
}

/// A random byte-level BPE vocabulary: the 256 byte stand-ins (sometimes with a few left out and
/// an UNK instead), merges, a couple of special tokens. `trained`: merges built as training
/// builds them (each joins two existing tokens into a new one, in order), else arbitrary pairs
/// of tokens whose joined piece is added if missing.
Vocabulary random_bpe_vocab(std::mt19937& rng, bool trained) {
  Vocabulary v;
  v.source = "random.gguf";
  v.pre_tokenizer = (rng() % 2) ? "smollm" : "gpt2";
  v.pieces.push_back("<unk>");
  v.kinds.push_back(TokenKind::Unknown);
  const bool drop_some = rng() % 3 == 0;
  v.unk_id = drop_some || rng() % 2 ? 0 : -1;
  for (int b = 0; b < 256; ++b) {
    if (drop_some && (b == 'b' || b == 0xA9)) continue;
    v.pieces.push_back(byte_char(static_cast<unsigned char>(b)));
    v.kinds.push_back(TokenKind::Normal);
  }
  // Merges only among the stand-ins of the alphabet, so that they fire.
  std::vector<std::string> pool;
  for (unsigned char b : kAlphabet)
    if (first_id(v, byte_char(b)) >= 0) pool.push_back(byte_char(b));
  std::set<std::string> pairs;
  const int n_merges = 5 + static_cast<int>(rng() % 40);
  for (int m = 0; m < n_merges * 4 && static_cast<int>(v.merges.size()) < n_merges; ++m) {
    const std::string& l = pool[rng() % pool.size()];
    const std::string& r = pool[rng() % pool.size()];
    const std::string merged = l + r;
    if (merged.size() > 12 || !pairs.insert(l + " " + r).second) continue;
    const bool is_new = first_id(v, merged) < 0;
    if (trained && !is_new) continue;
    v.merges.push_back(l + " " + r);
    if (is_new) {
      v.pieces.push_back(merged);
      v.kinds.push_back(TokenKind::Normal);
      pool.push_back(merged);
    }
  }
  if (!trained) std::shuffle(v.merges.begin(), v.merges.end(), rng);
  for (const char* s : {"<|s|>", "ab", "a", "c1"}) {  // specials, some overlapping ordinary text
    if (rng() % 2) continue;
    v.pieces.emplace_back(s);
    v.kinds.push_back(rng() % 2 ? TokenKind::Control : TokenKind::UserDefined);
  }
  return v;
}

/// A random SentencePiece vocabulary over the alphabet: characters, byte tokens (some missing),
/// random multi-character pieces with small integer scores (so that ties happen), specials.
Vocabulary random_spm_vocab(std::mt19937& rng) {
  Vocabulary v;
  v.source = "random.model";
  v.add_space_prefix = rng() % 2;
  v.unk_id = 0;
  auto add = [&](std::string p, TokenKind k, float score) {
    v.pieces.push_back(std::move(p));
    v.kinds.push_back(k);
    v.scores.push_back(score);
  };
  add("<unk>", TokenKind::Unknown, 0);
  add("<s>", TokenKind::Control, 0);
  for (int b = 0; b < 256; ++b) {
    if (rng() % 4 == 0) continue;
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    add(name, TokenKind::Byte, 0);
  }
  const std::vector<std::string> chars = {"a", "b", "c", "1", "!", "\xE2\x96\x81", "\xC3\xA9"};
  for (const auto& c : chars)
    if (rng() % 5 != 0) add(c, TokenKind::Normal, -static_cast<float>(rng() % 4));
  const int n_pieces = 5 + static_cast<int>(rng() % 40);
  for (int i = 0; i < n_pieces; ++i) {
    std::string p;
    for (std::size_t len = 2 + rng() % 4; p.size() < len;) p += chars[rng() % chars.size()];
    if (first_id(v, p) >= 0) continue;
    add(p, rng() % 10 == 0 ? TokenKind::Unused : TokenKind::Normal, -static_cast<float>(rng() % 6));
  }
  for (const char* s : {"<|u|>", "ab",
                        "\xE2\x96\x81"
                        "c"}) {
    if (rng() % 2) continue;
    add(s, rng() % 2 ? TokenKind::Control : TokenKind::UserDefined, 0);
  }
  return v;
}

std::string show(const std::vector<int>& ids) {
  std::string s;
  for (int id : ids) s += std::to_string(id) + " ";
  return s;
}

double seconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST_CASE("byte-level BPE merging equals the quadratic references on random vocabularies", "[tokenizer]") {
  std::mt19937 rng(1234);
  int compared = 0, merged_something = 0;
  for (int vocab_round = 0; vocab_round < 60; ++vocab_round) {
    const bool trained = vocab_round % 2 == 0;
    const Vocabulary v = random_bpe_vocab(rng, trained);
    const BpeTokenizer tok(v);
    for (int t = 0; t < 40; ++t) {
      const std::string text = random_text(rng, 40);
      INFO("vocabulary " << vocab_round << (trained ? " (trained order)" : " (arbitrary merges)") << ", text \"" << text
                         << "\"");
      const auto got = tok.encode(text);
      INFO("got: " << show(got));
      // Merging one pair at a time is what the priority queue does, on any vocabulary.
      CHECK(got == reference_bpe(tok, v, text, BpeOrder::OneAtATime));
      // On a vocabulary whose merges come in training order, that is also what merging every
      // occurrence of the best pair (the engine's algorithm before) gives: the output is unchanged.
      if (trained) CHECK(got == reference_bpe(tok, v, text, BpeOrder::AllOccurrences));
      ++compared;
      if (got.size() < text.size()) ++merged_something;
    }
  }
  CHECK(compared == 2400);
  CHECK(merged_something > 1000);  // the vocabularies' merges do fire
}

TEST_CASE("SentencePiece merging equals the quadratic reference on random vocabularies", "[tokenizer]") {
  std::mt19937 rng(99);
  int merged_something = 0;
  for (int vocab_round = 0; vocab_round < 60; ++vocab_round) {
    const Vocabulary v = random_spm_vocab(rng);
    const SpmTokenizer tok(v);
    for (int t = 0; t < 40; ++t) {
      const std::string text = random_text(rng, 40);
      INFO("vocabulary " << vocab_round << ", text \"" << text << "\"");
      const auto got = tok.encode(text);
      INFO("got: " << show(got));
      CHECK(got == reference_spm(v, text));
      std::size_t chars = unicode::decode_utf8(text).size();
      if (got.size() < chars) ++merged_something;
    }
  }
  CHECK(merged_something > 500);
}

TEST_CASE("special tokens: the Aho-Corasick split equals trying every piece at every byte", "[tokenizer]") {
  // Many overlapping user-defined pieces (prefixes and suffixes of one another) over 3 letters.
  std::mt19937 rng(7);
  for (int round = 0; round < 40; ++round) {
    Vocabulary v;
    v.source = "specials.gguf";
    v.unk_id = 0;
    v.pieces.push_back("<unk>");
    v.kinds.push_back(TokenKind::Unknown);
    for (int b = 0; b < 256; ++b) {
      v.pieces.push_back(byte_char(static_cast<unsigned char>(b)));
      v.kinds.push_back(TokenKind::Normal);
    }
    const int n = 1 + static_cast<int>(rng() % 30);
    for (int i = 0; i < n; ++i) {
      std::string p;
      for (std::size_t len = 1 + rng() % 6; p.size() < len;) p += "abc"[rng() % 3];
      v.pieces.push_back(p);  // duplicates on purpose: text maps to the first id
      v.kinds.push_back(rng() % 3 == 0 ? TokenKind::Control : TokenKind::UserDefined);
    }
    const BpeTokenizer tok(v);
    for (int t = 0; t < 30; ++t) {
      std::string text;
      for (std::size_t len = rng() % 60; text.size() < len;) text += "abcx"[rng() % 4];
      INFO("round " << round << ", text \"" << text << "\"");
      std::vector<int> want;
      for (const auto& [id, part] : reference_split(v, text, true)) {
        if (id >= 0)
          want.push_back(id);
        else
          for (auto chunk : tok.pre_tokenize(part)) reference_bpe_chunk(v, chunk, BpeOrder::OneAtATime, want);
      }
      CHECK(tok.encode(text) == want);
    }
  }
}

TEST_CASE("encode_prompt with a limit: the full ids when they fit, limit + 1 ids when not", "[tokenizer]") {
  GGUFFile f(test::repo_path("datasets/tokenizers/smollm2_tokenizer.gguf"));
  auto bpe = load_gguf_tokenizer(f);
  auto spm = load_llama2c_tokenizer(test::repo_path("datasets/tokenizers/spm_tiny_tokenizer.bin"), 512);
  std::mt19937 rng(5);
  for (const Tokenizer* tok : {bpe.get(), spm.get()}) {
    for (int t = 0; t < 200; ++t) {
      std::string text;
      for (std::size_t len = rng() % 300; text.size() < len;) text += "ab 1.<|im_start|>\n\xC3\xA9"[rng() % 19];
      const auto full = tok->encode_prompt(text);
      const std::size_t limit = rng() % (full.size() + 3);
      const auto got = tok->encode_prompt(text, limit);
      INFO("text \"" << text << "\", limit " << limit << ", full " << full.size() << " ids");
      if (full.size() <= limit)
        CHECK(got == full);
      else
        CHECK(got.size() == limit + 1);
    }
  }
}

TEST_CASE("a 1 MB prompt is tokenized or refused quickly", "[tokenizer]") {
  // The bounds are generous: what they catch is the quadratic algorithm, which took ~15 s for
  // 100 KB without spaces on SmolLM2's vocabulary (about 25 minutes for 1 MB). In Release each
  // encode takes well under 1 s (0.31 s at most, measured); sanitizer builds (ASan, UBSan and the
  // fuzzers' coverage hooks) are about ten times slower, so they get 30 s.
#if defined(__SANITIZE_ADDRESS__)
  const double bound_s = 30.0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  const double bound_s = 30.0;
#else
  const double bound_s = 3.0;
#endif
#else
  const double bound_s = 3.0;
#endif
  const double full_bound_s = bound_s;
  const std::size_t mb = 1 << 20;
  std::mt19937 rng(3);
  std::string random_bytes(mb, '\0');
  for (auto& c : random_bytes) c = static_cast<char>(rng());
  std::string specials;
  while (specials.size() < mb) specials += "<|im_start|><|im_end|>x";
  std::string sentences;
  while (sentences.size() < mb) sentences += "The quick brown fox jumps over the lazy dog. ";
  const std::vector<std::pair<std::string, std::string>> prompts = {
      {"random bytes", random_bytes},   {"one long word", std::string(mb, 'a')},
      {"digits", std::string(mb, '7')}, {"special tokens", specials},
      {"sentences", sentences},
  };
  GGUFFile smol(test::repo_path("datasets/tokenizers/smollm2_tokenizer.gguf"));
  GGUFFile tiny(test::repo_path("datasets/models/tiny-target.gguf"));
  std::vector<std::pair<std::string, std::unique_ptr<Tokenizer>>> toks;
  toks.emplace_back("smollm2", load_gguf_tokenizer(smol));
  toks.emplace_back("tiny-target", load_gguf_tokenizer(tiny));
  toks.emplace_back("spm_tiny.bin",
                    load_llama2c_tokenizer(test::repo_path("datasets/tokenizers/spm_tiny_tokenizer.bin"), 512));
  for (const auto& named_tok : toks) {
    const std::string& tok_name = named_tok.first;
    const Tokenizer* tok = named_tok.second.get();  // (clang 14 cannot capture structured bindings)
    for (const auto& named_prompt : prompts) {
      const std::string& what = named_prompt.first;
      const std::string& text = named_prompt.second;
      INFO(tok_name << ": " << what);
      std::vector<int> limited, full;
      // Refused as a stage refuses it: the context of SmolLM2 (8192), then the whole prompt.
      const double t_limited = seconds_of([&] { limited = tok->encode_prompt(text, 8191); });
      const double t_full = seconds_of([&] { full = tok->encode(text); });
      INFO("limited " << t_limited << " s, full " << t_full << " s, " << full.size() << " ids");
      CHECK(limited.size() == 8192);
      CHECK(t_limited < bound_s);
      CHECK(t_full < full_bound_s);
      CHECK(full.size() > 8192);
    }
  }
}
