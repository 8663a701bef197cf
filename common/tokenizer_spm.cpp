#include "common/tokenizer_spm.h"

#include <cstdio>
#include <queue>

#include "common/error.h"
#include "common/unicode.h"

namespace llm {

namespace {
const std::string kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space
}

SpmTokenizer::SpmTokenizer(Vocabulary vocab) : Tokenizer(std::move(vocab)) {
  const std::string& src = vocab_.source;
  if (vocab_.scores.size() != vocab_.pieces.size()) {
    throw Error(src + ": " + vocab_.field_prefix + "scores has " + std::to_string(vocab_.scores.size()) +
                " entries but " + vocab_.field_prefix + "tokens has " + std::to_string(vocab_.pieces.size()));
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    byte_ids_[b] = find(name);
    // Without UNK, every byte needs a way in: its byte token, or (ASCII) its own one-character
    // piece. Bytes from 0x80 up can be parts of characters the vocabulary lacks or invalid UTF-8,
    // so they need byte tokens.
    const std::string as_char = (b == ' ') ? kSpace : std::string(1, static_cast<char>(b));
    if (byte_ids_[b] < 0 && vocab_.unk_id < 0 && (b >= 0x80 || find(as_char) < 0)) {
      throw Error(src + ": byte " + std::string(name).substr(1, 4) + " has no byte token (" + name +
                  ") and there is no " + vocab_.field_prefix +
                  "unknown_token_id: text with that byte could not be encoded");
    }
  }
}

void SpmTokenizer::encode_into(std::string_view text, std::size_t stop_after, std::vector<int>& out) const {
  if (text.empty()) return;
  std::string normalized = vocab_.add_space_prefix ? kSpace : std::string();
  normalized.reserve(normalized.size() + text.size() + text.size() / 4);
  for (char c : text) {
    if (c == ' ')
      normalized += kSpace;
    else
      normalized += c;
  }
  for (const auto& seg : split_special(normalized, /*control_too=*/false)) {
    if (seg.special_id >= 0)
      out.push_back(seg.special_id);
    else
      encode_segment(seg.text, out);
    if (out.size() > stop_after) return;
  }
}

void SpmTokenizer::encode_segment(std::string_view text, std::vector<int>& out) const {
  // Symbols form a doubly linked list over `text`; a merge joins a symbol with its right
  // neighbour. Byte-fallback symbols never merge (SentencePiece keeps them apart).
  struct Symbol {
    std::size_t begin, len;
    int prev, next;
    int id;  // the piece's id, or -1 for a character that will fall back to bytes
    bool alive = true;
  };
  std::vector<Symbol> sym;
  for (const auto& ch : unicode::decode_utf8(text)) {
    const int n = static_cast<int>(sym.size());
    sym.push_back({ch.offset, ch.len, n - 1, n + 1, find(text.substr(ch.offset, ch.len))});
  }
  if (sym.empty()) return;
  sym.back().next = -1;

  // Candidate merges, best score first, then leftmost. A candidate is stale if either side
  // changed since it was queued (checked by the lengths recorded with it).
  struct Candidate {
    float score;
    int left, right;
    std::size_t len;  // merged byte length when queued
    bool operator<(const Candidate& o) const { return score != o.score ? score < o.score : left > o.left; }
  };
  std::priority_queue<Candidate> agenda;
  auto consider = [&](int l, int r) {
    if (l < 0 || r < 0 || sym[static_cast<std::size_t>(l)].id < 0 || sym[static_cast<std::size_t>(r)].id < 0) return;
    const std::size_t len = sym[static_cast<std::size_t>(l)].len + sym[static_cast<std::size_t>(r)].len;
    const int id = find(text.substr(sym[static_cast<std::size_t>(l)].begin, len));
    if (id < 0 || vocab_.kinds[static_cast<std::size_t>(id)] == TokenKind::Unused) return;
    agenda.push({vocab_.scores[static_cast<std::size_t>(id)], l, r, len});
  };
  for (int i = 0; i + 1 < static_cast<int>(sym.size()); ++i) consider(i, i + 1);

  while (!agenda.empty()) {
    const Candidate c = agenda.top();
    agenda.pop();
    Symbol& l = sym[static_cast<std::size_t>(c.left)];
    Symbol& r = sym[static_cast<std::size_t>(c.right)];
    if (!l.alive || !r.alive || l.next != c.right || l.len + r.len != c.len) continue;  // stale
    l.len += r.len;
    l.id = find(text.substr(l.begin, l.len));
    l.next = r.next;
    r.alive = false;
    if (r.next >= 0) sym[static_cast<std::size_t>(r.next)].prev = c.left;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }

  for (int i = 0; i >= 0; i = sym[static_cast<std::size_t>(i)].next) {
    const Symbol& s = sym[static_cast<std::size_t>(i)];
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    for (std::size_t k = 0; k < s.len; ++k) {  // byte fallback
      const int b = byte_ids_[static_cast<unsigned char>(text[s.begin + k])];
      out.push_back(b >= 0 ? b : vocab_.unk_id);
    }
  }
}

std::string SpmTokenizer::token_bytes(int id, int prev) const {
  if (id < 0 || id >= vocab_size()) return "";
  const std::string& p = piece(id);
  switch (vocab_.kinds[static_cast<std::size_t>(id)]) {
    case TokenKind::Control:
      return "";
    case TokenKind::Unknown:
      return " \xE2\x81\x87 ";  // " ⁇ ", as llama.cpp shows it
    case TokenKind::Byte:       // the loader checked the form <0xNN>
      return std::string(1, static_cast<char>(byte_piece_value(p)));
    default:
      break;
  }
  std::string out;
  for (std::size_t i = 0; i < p.size();) {
    if (p.compare(i, kSpace.size(), kSpace) == 0) {
      out += ' ';
      i += kSpace.size();
    } else {
      out += p[i++];
    }
  }
  // The dummy prefix added at encode time is not part of the text: drop it at the start.
  if (vocab_.add_space_prefix && (prev < 0 || prev == vocab_.bos_id) && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

}  // namespace llm
