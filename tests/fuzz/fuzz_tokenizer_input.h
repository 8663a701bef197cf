// fuzz_tokenizer_input.h (fuzzing only): the byte format the tokenizer fuzzers read, shared by
// the fuzzers and the seed writer so that both agree on it.
//
//   byte 0        flags: 1 = start with the 256 byte tokens (BPE: GPT-2's byte stand-ins,
//                 SentencePiece: <0x00>..<0xFF>), 2 = start with "<unk>" as the UNK id,
//                 4 = SentencePiece dummy prefix / BPE "smollm" pre-tokenizer, 8 = add BOS
//   byte 1        the token limit given to encode_prompt(text, limit)
//   records       separated by '\n', ended by an empty record ("\n\n"): a kind byte ('0'..'6' a
//                 token of that GGUF token type, 'm' a merge "left right", 'b' / 'e' the BOS / EOS
//                 id as the record's first byte), a score byte (int8), then the piece
//   the rest      the text to encode
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/tokenizer.h"
#include "common/unicode.h"

namespace llm::fuzz {

enum : std::uint8_t { kByteTokens = 1, kUnk = 2, kPrefixOrSmollm = 4, kAddBos = 8 };

/// GPT-2's printable stand-in for byte b (byte-level BPE pieces are written in these).
inline std::string bpe_byte_char(int b) {
  int next = 256;
  for (int c = 0; c < b; ++c) {
    const bool printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
    if (!printable) ++next;
  }
  const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  return unicode::encode_utf8(static_cast<char32_t>(printable ? b : next));
}

struct TokenizerInput {
  Vocabulary vocab;
  std::string text;
  std::size_t limit = 0;
  bool only_plain_tokens = true;  ///< every record was a Normal (1) or Unused (5) token, or a merge
};

/// Reads the format above. `bpe` picks the byte-token spelling and which fields apply.
inline TokenizerInput parse_tokenizer_input(std::string_view data, bool bpe) {
  TokenizerInput in;
  Vocabulary& v = in.vocab;
  v.source = bpe ? "fuzz-bpe" : "fuzz-spm";
  if (data.size() < 2) return in;
  const auto flags = static_cast<std::uint8_t>(data[0]);
  in.limit = static_cast<std::uint8_t>(data[1]);
  data.remove_prefix(2);
  auto add = [&](std::string piece, TokenKind kind, float score) {
    v.pieces.push_back(std::move(piece));
    v.kinds.push_back(kind);
    v.scores.push_back(score);
  };
  if (flags & kUnk) {
    add("<unk>", TokenKind::Unknown, 0);
    v.unk_id = 0;
  }
  if (flags & kByteTokens) {
    for (int b = 0; b < 256; ++b) {
      if (bpe) {
        add(bpe_byte_char(b), TokenKind::Normal, 0);
      } else {
        static const char* hex = "0123456789ABCDEF";
        add(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">", TokenKind::Byte, 0);
      }
    }
  }
  v.add_space_prefix = !bpe && (flags & kPrefixOrSmollm);
  v.pre_tokenizer = bpe ? ((flags & kPrefixOrSmollm) ? "smollm" : "gpt2") : "";
  v.add_bos = flags & kAddBos;
  while (!data.empty()) {
    const std::size_t end = data.find('\n');
    const std::string_view rec = data.substr(0, end);
    data = end == std::string_view::npos ? std::string_view() : data.substr(end + 1);
    if (rec.empty()) break;  // the end of the records
    if (rec.size() < 2) continue;
    const char kind = rec[0];
    const float score = static_cast<float>(static_cast<std::int8_t>(rec[1]));
    const std::string piece(rec.substr(2));
    if (kind == 'm') {
      v.merges.push_back(piece);
    } else if (kind == 'b') {
      v.bos_id = static_cast<std::uint8_t>(rec[1]);
    } else if (kind == 'e') {
      v.eos_id = static_cast<std::uint8_t>(rec[1]);
    } else if (kind >= '0' && kind <= '6') {
      const int t = kind - '0';
      add(piece, t == 0 ? TokenKind::Normal : static_cast<TokenKind>(t), score);
      if (t != 1 && t != 5 && t != 0) in.only_plain_tokens = false;
    }
  }
  if (bpe) v.scores.clear();
  in.text = std::string(data);
  return in;
}

}  // namespace llm::fuzz
