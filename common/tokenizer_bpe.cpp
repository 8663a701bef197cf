#include "common/tokenizer_bpe.h"

#include <limits>

#include "common/error.h"
#include "common/unicode.h"

namespace llm {

namespace {

using unicode::Char;

// GPT-2's pattern, matched by hand at position i of the decoded characters:
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Returns the number of characters matched (at least 1).
std::size_t match_gpt2(const std::vector<Char>& c, std::size_t i) {
  const std::size_t n = c.size();
  auto is_l = [&](std::size_t k) { return k < n && unicode::is_letter(c[k].cp); };
  auto is_n = [&](std::size_t k) { return k < n && unicode::is_number(c[k].cp); };
  auto is_s = [&](std::size_t k) { return k < n && unicode::is_whitespace(c[k].cp); };
  auto is_other = [&](std::size_t k) { return k < n && !is_l(k) && !is_n(k) && !is_s(k); };

  if (c[i].cp == '\'') {
    for (const char* suffix : {"s", "t", "re", "ve", "m", "ll", "d"}) {
      std::size_t k = 0;
      while (suffix[k] != 0 && i + 1 + k < n && c[i + 1 + k].cp == static_cast<char32_t>(suffix[k])) ++k;
      if (suffix[k] == 0) return 1 + k;
    }
  }
  const std::size_t j = (c[i].cp == ' ') ? i + 1 : i;  // the optional leading space
  for (auto cls :
       {+[](char32_t cp) { return unicode::is_letter(cp); }, +[](char32_t cp) { return unicode::is_number(cp); }}) {
    if (j < n && cls(c[j].cp)) {
      std::size_t k = j;
      while (k < n && cls(c[k].cp)) ++k;
      return k - i;
    }
  }
  if (is_other(j)) {
    std::size_t k = j;
    while (is_other(k)) ++k;
    return k - i;
  }
  // Whitespace: a run that ends the text is taken whole; a run followed by other text leaves
  // its last character to start the next chunk (so " word" keeps its space), unless it is a
  // single character.
  std::size_t k = i;
  while (is_s(k)) ++k;
  if (k == i) return 1;  // cannot happen (every character is L, N, space or other)
  if (k == n || k - i == 1) return k - i;
  return k - i - 1;
}

}  // namespace

BpeTokenizer::BpeTokenizer(Vocabulary vocab) : Tokenizer(std::move(vocab)) {
  const std::string& pre = vocab_.pre_tokenizer;
  if (pre == "smollm" || pre == "starcoder" || pre == "refact") {
    split_digits_ = true;  // these add "\p{N}" (one digit per chunk) before the GPT-2 pattern
  } else if (pre != "gpt2" && pre != "default" && !pre.empty()) {
    throw Error(vocab_.source + ": tokenizer.ggml.pre is '" + pre +
                "': supported byte-level pre-tokenizers are gpt2, default, smollm, starcoder, refact");
  }
  for (std::size_t r = 0; r < vocab_.merges.size(); ++r) merge_rank_.emplace(vocab_.merges[r], static_cast<int>(r));

  // GPT-2's table: printable Latin-1 bytes stand for themselves, the other 68 are moved to
  // U+0100 and up, in byte order.
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const char32_t cp = printable ? static_cast<char32_t>(b) : next++;
    byte_to_char_[b] = unicode::encode_utf8(cp);
    char_to_byte_[cp] = static_cast<unsigned char>(b);
  }
}

std::vector<std::string_view> BpeTokenizer::pre_tokenize(std::string_view text) const {
  std::vector<std::string_view> chunks;
  const auto chars = unicode::decode_utf8(text);
  auto emit = [&](const std::vector<Char>& c, std::size_t from, std::size_t to) {
    // GPT-2 pattern over characters [from, to).
    std::vector<Char> part(c.begin() + static_cast<std::ptrdiff_t>(from), c.begin() + static_cast<std::ptrdiff_t>(to));
    for (std::size_t i = 0; i < part.size();) {
      const std::size_t len = match_gpt2(part, i);
      const std::size_t b0 = part[i].offset, b1 = part[i + len - 1].offset + part[i + len - 1].len;
      chunks.push_back(text.substr(b0, b1 - b0));
      i += len;
    }
  };
  if (!split_digits_) {
    emit(chars, 0, chars.size());
    return chunks;
  }
  std::size_t start = 0;
  for (std::size_t i = 0; i < chars.size(); ++i) {
    if (!unicode::is_number(chars[i].cp)) continue;
    if (i > start) emit(chars, start, i);
    chunks.push_back(text.substr(chars[i].offset, chars[i].len));
    start = i + 1;
  }
  if (start < chars.size()) emit(chars, start, chars.size());
  return chunks;
}

std::vector<int> BpeTokenizer::encode(std::string_view text) const {
  std::vector<int> out;
  for (const auto& seg : split_special(text, /*control_too=*/true)) {
    if (seg.special_id >= 0) {
      out.push_back(seg.special_id);
      continue;
    }
    for (auto chunk : pre_tokenize(seg.text)) encode_chunk(chunk, out);
  }
  return out;
}

void BpeTokenizer::encode_chunk(std::string_view chunk, std::vector<int>& out) const {
  std::vector<std::string> parts;
  for (unsigned char b : chunk) parts.push_back(byte_to_char_[b]);
  while (parts.size() > 1) {
    int best_rank = std::numeric_limits<int>::max();
    std::size_t best = 0;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      auto it = merge_rank_.find(parts[i] + " " + parts[i + 1]);
      if (it != merge_rank_.end() && it->second < best_rank) {
        best_rank = it->second;
        best = i;
      }
    }
    if (best_rank == std::numeric_limits<int>::max()) break;
    // Merge every occurrence of the best pair, left to right.
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
    const int id = find(p);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    // A piece the merges made but the vocabulary lacks (a malformed file): fall back to bytes.
    for (const auto& ch : unicode::decode_utf8(p)) {
      const int b = find(p.substr(ch.offset, ch.len));
      out.push_back(b >= 0 ? b : vocab_.unk_id);
    }
  }
}

std::string BpeTokenizer::token_bytes(int id, int /*prev*/) const {
  if (id < 0 || id >= vocab_size()) return "";
  const TokenKind kind = vocab_.kinds[static_cast<std::size_t>(id)];
  const std::string& p = piece(id);
  // Special tokens decode to their own text, as Hugging Face's decode() does by default.
  if (kind == TokenKind::Control || kind == TokenKind::UserDefined) return p;
  std::string out;
  for (const auto& ch : unicode::decode_utf8(p)) {
    auto it = char_to_byte_.find(ch.cp);
    if (it != char_to_byte_.end())
      out += static_cast<char>(it->second);
    else
      out += p.substr(ch.offset, ch.len);
  }
  return out;
}

}  // namespace llm
