#include "common/tokenizer_bpe.h"

#include <cstdio>
#include <limits>
#include <queue>

#include "common/error.h"
#include "common/unicode.h"

namespace llm {

namespace {

using unicode::Char;

// GPT-2's pattern, matched by hand at position i of the decoded characters c[.., end):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Returns the number of characters matched (at least 1). Each character is looked at a bounded
// number of times over a whole text, so the pre-tokenizer is linear.
std::size_t match_gpt2(const std::vector<Char>& c, std::size_t i, std::size_t end) {
  const std::size_t n = end;
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
  const std::string& src = vocab_.source;
  if (pre == "smollm" || pre == "starcoder" || pre == "refact") {
    split_digits_ = true;  // these add "\p{N}" (one digit per chunk) before the GPT-2 pattern
  } else if (pre != "gpt2" && pre != "default" && !pre.empty()) {
    throw Error(src + ": " + vocab_.field_prefix + "pre is '" + pre +
                "': supported byte-level pre-tokenizers are gpt2, default, smollm, starcoder, refact");
  }
  if (vocab_.merges.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw Error(src + ": " + vocab_.field_prefix + "merges has " + std::to_string(vocab_.merges.size()) + " entries");
  for (std::size_t r = 0; r < vocab_.merges.size(); ++r) {
    const std::string& m = vocab_.merges[r];
    const std::size_t space = m.find(' ');
    auto bad = [&](const std::string& why) {
      std::string shown = m.substr(0, 64);
      throw Error(src + ": " + field("merges", r) + " is '" + shown + (m.size() > 64 ? "'...: " : "': ") + why);
    };
    if (space == std::string::npos) bad("a merge is two tokens separated by a space");
    const std::string_view left = std::string_view(m).substr(0, space), right = std::string_view(m).substr(space + 1);
    if (left.empty() || right.empty()) bad("a merge is two non-empty tokens separated by one space");
    const int l = find(left), r_id = find(right);
    if (l < 0) bad("its left half '" + std::string(left) + "' is not a token");
    if (r_id < 0) bad("its right half '" + std::string(right) + "' is not a token");
    const int result = find(std::string(left) + std::string(right));
    if (result < 0) bad("the merged piece '" + std::string(left) + std::string(right) + "' is not a token");
    merges_.emplace(pair_key(l, r_id), Merge{static_cast<int>(r), result});  // a repeated pair keeps its first rank
  }

  // GPT-2's table: printable Latin-1 bytes stand for themselves, the other 68 are moved to
  // U+0100 and up, in byte order.
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const char32_t cp = printable ? static_cast<char32_t>(b) : next++;
    byte_char_id_[b] = find(unicode::encode_utf8(cp));
    char_to_byte_[cp] = static_cast<unsigned char>(b);
    if (byte_char_id_[b] < 0 && vocab_.unk_id < 0) {
      char hex[64];
      std::snprintf(hex, sizeof(hex), "0x%02X has no token (its stand-in U+%04X", b, static_cast<unsigned>(cp));
      throw Error(src + ": byte " + hex + " is not in " + vocab_.field_prefix + "tokens) and there is no " +
                  vocab_.field_prefix + "unknown_token_id: text with that byte could not be encoded");
    }
  }
}

std::vector<std::string_view> BpeTokenizer::pre_tokenize(std::string_view text) const {
  std::vector<std::string_view> chunks;
  const auto chars = unicode::decode_utf8(text);
  auto emit = [&](std::size_t from, std::size_t to) {  // GPT-2 pattern over characters [from, to)
    for (std::size_t i = from; i < to;) {
      const std::size_t len = match_gpt2(chars, i, to);
      const std::size_t b0 = chars[i].offset, b1 = chars[i + len - 1].offset + chars[i + len - 1].len;
      chunks.push_back(text.substr(b0, b1 - b0));
      i += len;
    }
  };
  if (!split_digits_) {
    emit(0, chars.size());
    return chunks;
  }
  std::size_t start = 0;
  for (std::size_t i = 0; i < chars.size(); ++i) {
    if (!unicode::is_number(chars[i].cp)) continue;
    if (i > start) emit(start, i);
    chunks.push_back(text.substr(chars[i].offset, chars[i].len));
    start = i + 1;
  }
  if (start < chars.size()) emit(start, chars.size());
  return chunks;
}

void BpeTokenizer::encode_into(std::string_view text, std::size_t stop_after, std::vector<int>& out) const {
  for (const auto& seg : split_special(text, /*control_too=*/true)) {
    if (seg.special_id >= 0) {
      out.push_back(seg.special_id);
    } else {
      for (auto chunk : pre_tokenize(seg.text)) {
        encode_chunk(chunk, out);
        if (out.size() > stop_after) return;  // chunks are independent: these ids are final
      }
    }
    if (out.size() > stop_after) return;
  }
}

void BpeTokenizer::encode_chunk(std::string_view chunk, std::vector<int>& out) const {
  // Symbols form a doubly linked list, one per byte at first; a merge joins a symbol with its
  // right neighbour. A symbol whose stand-in is not a token (id -1) never merges: every merge's
  // halves are tokens (checked at load).
  struct Symbol {
    int id;
    int prev, next;
    std::size_t len;  // bytes of the chunk it covers; grows with every merge, so it dates a candidate
  };
  std::vector<Symbol> sym;
  sym.reserve(chunk.size());
  for (unsigned char b : chunk) {
    const int n = static_cast<int>(sym.size());
    sym.push_back({byte_char_id_[b], n - 1, n + 1, 1});
  }
  if (sym.empty()) return;
  sym.back().next = -1;

  // Candidate merges, lowest rank first, then leftmost. A candidate is stale once either side
  // has changed since it was queued: the left one no longer has the right one as its neighbour,
  // or their lengths no longer add up to the length recorded with it.
  struct Candidate {
    int rank, left, right;
    std::size_t len;
    int result;
    bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Candidate> agenda;
  auto consider = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const Symbol& a = sym[static_cast<std::size_t>(l)];
    const Symbol& b = sym[static_cast<std::size_t>(r)];
    if (a.id < 0 || b.id < 0) return;
    auto it = merges_.find(pair_key(a.id, b.id));
    if (it != merges_.end()) agenda.push({it->second.rank, l, r, a.len + b.len, it->second.result});
  };
  for (int i = 0; i + 1 < static_cast<int>(sym.size()); ++i) consider(i, i + 1);

  while (!agenda.empty()) {
    const Candidate c = agenda.top();
    agenda.pop();
    Symbol& l = sym[static_cast<std::size_t>(c.left)];
    Symbol& r = sym[static_cast<std::size_t>(c.right)];
    if (l.len == 0 || r.len == 0 || l.next != c.right || l.len + r.len != c.len) continue;  // stale
    l.id = c.result;
    l.len += r.len;
    l.next = r.next;
    r.len = 0;  // dead
    if (r.next >= 0) sym[static_cast<std::size_t>(r.next)].prev = c.left;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }

  // A byte whose stand-in is not a token becomes UNK (the loader made sure there is one).
  for (int i = 0; i >= 0; i = sym[static_cast<std::size_t>(i)].next)
    out.push_back(sym[static_cast<std::size_t>(i)].id >= 0 ? sym[static_cast<std::size_t>(i)].id : vocab_.unk_id);
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
