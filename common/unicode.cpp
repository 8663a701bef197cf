#include "common/unicode.h"

#include <algorithm>
#include <iterator>

namespace llm::unicode {

#include "common/unicode_tables.inc"

namespace {
template <std::size_t N>
bool in_ranges(const CodepointRange (&ranges)[N], char32_t cp) {
  auto it = std::upper_bound(std::begin(ranges), std::end(ranges), cp,
                             [](char32_t c, const CodepointRange& r) { return c < r.first; });
  return it != std::begin(ranges) && cp <= std::prev(it)->last;
}
}  // namespace

bool is_letter(char32_t cp) {
  return in_ranges(kLetter, cp);
}
bool is_number(char32_t cp) {
  return in_ranges(kNumber, cp);
}
bool is_whitespace(char32_t cp) {
  return in_ranges(kWhitespace, cp);
}

int utf8_sequence_length(unsigned char b) {
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b >= 0xE0 && b <= 0xEF) return 3;
  if (b >= 0xF0 && b <= 0xF4) return 4;
  return 0;
}

std::vector<Char> decode_utf8(std::string_view s) {
  std::vector<Char> out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    const int len = utf8_sequence_length(b0);
    bool ok = len > 0 && i + static_cast<std::size_t>(len) <= s.size();
    char32_t cp = b0;
    if (ok && len > 1) {
      cp = b0 & (0xFF >> (len + 1));
      for (int k = 1; k < len; ++k) {
        const auto b = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
        if ((b & 0xC0) != 0x80) {
          ok = false;
          break;
        }
        cp = (cp << 6) | (b & 0x3F);
      }
      // Reject overlong forms, surrogates and values past U+10FFFF.
      if (ok &&
          ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF)))
        ok = false;
    }
    if (!ok) {
      out.push_back({0xFFFD, i, 1});
      ++i;
    } else {
      out.push_back({cp, i, static_cast<std::size_t>(len)});
      i += static_cast<std::size_t>(len);
    }
  }
  return out;
}

std::string encode_utf8(char32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

std::size_t complete_utf8_prefix(std::string_view s) {
  // Look back at most 3 bytes for the lead byte of a sequence that is not finished yet.
  const std::size_t n = s.size();
  for (std::size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto b = static_cast<unsigned char>(s[n - back]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    const int len = utf8_sequence_length(b);
    return (len > static_cast<int>(back)) ? n - back : n;
  }
  return n;
}

}  // namespace llm::unicode
