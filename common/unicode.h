// unicode.h: the little Unicode a tokenizer needs: UTF-8 decoding and three character classes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace llm::unicode {

/// One decoded character: its code point and where its bytes sit in the source string.
/// Invalid UTF-8 bytes decode one at a time as code point 0xFFFD with len 1.
struct Char {
  char32_t cp;
  std::size_t offset;
  std::size_t len;
};

/// Decodes `s` into characters (never throws; invalid bytes become U+FFFD of length 1).
std::vector<Char> decode_utf8(std::string_view s);
/// Encodes one code point as UTF-8.
std::string encode_utf8(char32_t cp);
/// Length of the UTF-8 sequence that starts with byte b (1..4), or 0 for a continuation or
/// invalid lead byte.
int utf8_sequence_length(unsigned char b);
/// The length of the longest prefix of `s` made of complete UTF-8 sequences; an incomplete
/// sequence at the end is left out (it may be finished by the next token's bytes).
std::size_t complete_utf8_prefix(std::string_view s);

bool is_letter(char32_t cp);      ///< general category L (regex `\p{L}`)
bool is_number(char32_t cp);      ///< general category N (regex `\p{N}`)
bool is_whitespace(char32_t cp);  ///< White_Space property (regex `\s`)

}  // namespace llm::unicode
