// tokenizer.cpp: what both tokenizers share: the vocabulary, special-token splitting, the
// loaders for GGUF and llama2.c tokenizer files, and the streaming UTF-8 decoder.
#include "common/tokenizer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "common/error.h"
#include "common/gguf.h"
#include "common/mapped_file.h"
#include "common/tokenizer_bpe.h"
#include "common/tokenizer_spm.h"
#include "common/unicode.h"

namespace llm {

namespace {
std::string show_piece(std::string_view piece) {
  std::string out = "'";
  for (unsigned char c : piece.substr(0, 64)) {
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02X", c);
      out += hex;
    }
  }
  return out + (piece.size() > 64 ? "'..." : "'");
}
}  // namespace

int byte_piece_value(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  int value = 0;
  for (char c : piece.substr(3, 2)) {
    int digit = -1;
    if (c >= '0' && c <= '9') digit = c - '0';
    if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

std::string Tokenizer::field(const char* array, std::size_t index) const {
  return vocab_.field_prefix + array + "[" + std::to_string(index) + "]";
}

Tokenizer::Tokenizer(Vocabulary vocab) : vocab_(std::move(vocab)) {
  const std::string& src = vocab_.source;
  const std::string tokens_key = vocab_.field_prefix + "tokens";
  const std::size_t n = vocab_.pieces.size();
  if (n == 0) throw Error(src + ": " + tokens_key + " is empty: the tokenizer has no tokens");
  if (n > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw Error(src + ": " + tokens_key + " has " + std::to_string(n) + " tokens: more than ids can number");
  if (vocab_.kinds.empty()) vocab_.kinds.assign(n, TokenKind::Normal);
  if (vocab_.kinds.size() != n) {
    throw Error(src + ": " + vocab_.field_prefix + "token_type has " + std::to_string(vocab_.kinds.size()) +
                " entries but " + tokens_key + " has " + std::to_string(n));
  }
  if (!vocab_.scores.empty() && vocab_.scores.size() != n) {
    throw Error(src + ": " + vocab_.field_prefix + "scores has " + std::to_string(vocab_.scores.size()) +
                " entries but " + tokens_key + " has " + std::to_string(n));
  }
  for (std::size_t i = 0; i < vocab_.scores.size(); ++i) {
    // A NaN score would make the merge order (a heap over scores) undefined.
    if (!std::isfinite(vocab_.scores[i]))
      throw Error(src + ": " + field("scores", i) + " is " + std::to_string(vocab_.scores[i]) + ": not finite");
  }
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& p = vocab_.pieces[i];
    if (vocab_.kinds[i] == TokenKind::Byte && byte_piece_value(p) < 0) {
      throw Error(src + ": " + field("token_type", i) + " is 6 (BYTE) but " + field("tokens", i) + " is " +
                  show_piece(p) + ", not of the form <0xNN>");
    }
    piece_to_id_.emplace(p, static_cast<int>(i));  // a duplicate keeps the first id
    max_token_bytes_ = std::max(max_token_bytes_, p.size());
  }
  const int size = static_cast<int>(n);
  auto check_id = [&](const char* key, int id) {
    if (id < -1 || id >= size) {
      throw Error(src + ": " + vocab_.field_prefix + key + " is " + std::to_string(id) +
                  ", outside the vocabulary of " + std::to_string(n) + " tokens");
    }
  };
  check_id("bos_token_id", vocab_.bos_id);
  check_id("eos_token_id", vocab_.eos_id);
  check_id("unknown_token_id", vocab_.unk_id);
  if (vocab_.eos_id >= 0) stop_ids_.push_back(vocab_.eos_id);
  for (const char* end_of_turn : {"<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|end|>"}) {
    const int id = find(end_of_turn);
    if (id >= 0 && std::find(stop_ids_.begin(), stop_ids_.end(), id) == stop_ids_.end()) stop_ids_.push_back(id);
  }
  for (int id = 0; id < size; ++id) {
    const TokenKind k = vocab_.kinds[static_cast<std::size_t>(id)];
    if (k == TokenKind::UserDefined) user_defined_.add(piece(id), id);
    if (k == TokenKind::UserDefined || k == TokenKind::Control) special_.add(piece(id), id);
  }
  user_defined_.build();
  special_.build();
}

int Tokenizer::find(std::string_view piece) const {
  auto it = piece_to_id_.find(piece);
  return it == piece_to_id_.end() ? -1 : it->second;
}

namespace {
// Symbol indices inside the tokenizers are ints; no prompt comes near this.
constexpr std::size_t kMaxTextBytes = std::size_t{1} << 30;
void check_text_size(std::string_view text) {
  if (text.size() > kMaxTextBytes) {
    throw Error("a text of " + std::to_string(text.size()) + " bytes is longer than the " +
                std::to_string(kMaxTextBytes) + " bytes the tokenizer takes");
  }
}
}  // namespace

std::vector<int> Tokenizer::encode(std::string_view text) const {
  check_text_size(text);
  std::vector<int> ids;
  encode_into(text, std::numeric_limits<std::size_t>::max(), ids);
  return ids;
}

std::vector<int> Tokenizer::encode_prompt(std::string_view text) const {
  return encode_prompt(text, std::numeric_limits<std::size_t>::max());
}

std::vector<int> Tokenizer::encode_prompt(std::string_view text, std::size_t max_tokens) const {
  std::vector<int> ids;
  if (vocab_.add_bos && vocab_.bos_id >= 0) ids.push_back(vocab_.bos_id);
  // One id stands for at most max_token_bytes_ bytes of text, so a prefix of (max_tokens + 1) *
  // max_token_bytes_ bytes already needs more than max_tokens ids: the rest need not be read.
  const std::size_t no_limit = std::numeric_limits<std::size_t>::max();
  std::string_view part = text;
  if (max_tokens < no_limit / max_token_bytes_ - 1) {
    const std::size_t enough = (max_tokens + 1) * max_token_bytes_;
    if (part.size() > enough) part = part.substr(0, enough);
  }
  check_text_size(part);
  encode_into(part, max_tokens, ids);
  if (max_tokens < no_limit && ids.size() > max_tokens + 1) ids.resize(max_tokens + 1);
  return ids;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  TextDecoder d(*this);
  std::string out;
  for (int id : ids) out += d.push(id);
  return out + d.flush();
}

std::vector<TextSegment> Tokenizer::split_special(std::string_view text, bool control_too) const {
  return (control_too ? special_ : user_defined_).split(text);
}

// ---- loaders ---------------------------------------------------------------------------------

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GGUFFile& f) {
  const std::string model = f.get_string("tokenizer.ggml.model");
  Vocabulary v;
  v.source = f.path();
  v.pieces = f.get_string_array("tokenizer.ggml.tokens");
  const std::size_t n = v.pieces.size();
  if (f.has("tokenizer.ggml.token_type")) {
    const auto types = f.get_int_array("tokenizer.ggml.token_type");
    if (types.size() != n) {
      throw Error(f.path() + ": tokenizer.ggml.token_type has " + std::to_string(types.size()) +
                  " entries but tokenizer.ggml.tokens has " + std::to_string(n));
    }
    for (std::size_t i = 0; i < n; ++i) {
      // 0 is ggml's UNDEFINED, read as an ordinary token as llama.cpp does.
      const std::int32_t t = types[i];
      if (t < 0 || t > 6) {
        throw Error(f.path() + ": tokenizer.ggml.token_type[" + std::to_string(i) + "] is " + std::to_string(t) +
                    ": token types are 0..6 (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte)");
      }
      v.kinds.push_back(t == 0 ? TokenKind::Normal : static_cast<TokenKind>(t));
    }
  }
  // Ids are read at full width and checked before they are narrowed to int (2^32 + 1 must not
  // become 1).
  auto token_id = [&](const char* key) {
    const std::int64_t id = f.get_int(key, -1);
    if (id < -1 || id >= static_cast<std::int64_t>(n)) {
      throw Error(f.path() + ": " + key + " is " + std::to_string(id) + ", outside the vocabulary of " +
                  std::to_string(n) + " tokens");
    }
    return static_cast<int>(id);
  };
  v.bos_id = token_id("tokenizer.ggml.bos_token_id");
  v.eos_id = token_id("tokenizer.ggml.eos_token_id");
  v.unk_id = token_id("tokenizer.ggml.unknown_token_id");
  v.chat_template = f.get_string("tokenizer.chat_template", "");
  if (model == "llama") {
    v.scores = f.get_float_array("tokenizer.ggml.scores");
    if (v.scores.size() != n) {
      throw Error(f.path() + ": tokenizer.ggml.scores has " + std::to_string(v.scores.size()) +
                  " entries but tokenizer.ggml.tokens has " + std::to_string(n));
    }
    v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token", true);
    v.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix", true);
    return std::make_unique<SpmTokenizer>(std::move(v));
  }
  if (model == "gpt2") {
    v.merges = f.get_string_array("tokenizer.ggml.merges");
    v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token", false);
    v.add_space_prefix = false;
    v.pre_tokenizer = f.get_string("tokenizer.ggml.pre", "default");
    return std::make_unique<BpeTokenizer>(std::move(v));
  }
  throw Error(f.path() + ": tokenizer.ggml.model is '" + model +
              "': supported are 'llama' (SentencePiece BPE) and 'gpt2' (byte-level BPE)");
}

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path, int vocab_size) {
  MappedFile file(path);
  const std::uint8_t* p = file.data();
  std::size_t left = file.size();
  auto take = [&](void* dst, std::size_t n, const std::string& what) {
    if (n > left) {
      throw Error(path + ": file is truncated: " + what + " needs " + std::to_string(n) + " bytes at offset " +
                  std::to_string(file.size() - left) + " but " + std::to_string(left) +
                  " remain (the model's vocab_size is " + std::to_string(vocab_size) +
                  ": is this the tokenizer for this model?)");
    }
    std::memcpy(dst, p, n);
    p += n;
    left -= n;
  };
  if (vocab_size < 1)
    throw Error(path + ": the model's vocab_size is " + std::to_string(vocab_size) + ": a tokenizer needs tokens");
  std::int32_t max_len = 0;
  take(&max_len, 4, "max_token_length");
  if (max_len <= 0 || max_len > (1 << 16))
    throw Error(path + ": max_token_length is " + std::to_string(max_len) + ": not a llama2.c tokenizer.bin?");
  Vocabulary v;
  v.source = path;
  v.field_prefix = "";  // errors name "tokens[17]", "scores[17]"
  v.bos_id = 1;         // llama2.c's fixed convention (the Llama 2 SentencePiece ids)
  v.eos_id = 2;
  v.unk_id = 0;
  v.add_bos = true;
  v.add_space_prefix = true;
  for (int id = 0; id < vocab_size; ++id) {
    float score = 0;
    std::int32_t len = 0;
    const std::string what = "token " + std::to_string(id);
    take(&score, 4, what + " score");
    take(&len, 4, what + " length");
    if (len < 0 || len > max_len) {
      throw Error(path + ": " + what + " has length " + std::to_string(len) + " (max_token_length is " +
                  std::to_string(max_len) + ")");
    }
    std::string piece(static_cast<std::size_t>(len), '\0');
    take(piece.data(), piece.size(), what + " bytes");
    // llama2.c's exporter wrote SentencePiece's U+2581 as a plain space; undo that so both
    // tokenizer sources look the same to the encoder.
    std::string normalized;
    for (char c : piece) normalized += (c == ' ') ? std::string("\xE2\x96\x81") : std::string(1, c);
    TokenKind kind = TokenKind::Normal;
    if (id == 0)
      kind = TokenKind::Unknown;
    else if (id == 1 || id == 2)
      kind = TokenKind::Control;
    else if (byte_piece_value(normalized) >= 0)
      kind = TokenKind::Byte;
    else if (normalized.size() > 4 && normalized.rfind("<|", 0) == 0 &&
             normalized.compare(normalized.size() - 2, 2, "|>") == 0)
      kind = TokenKind::UserDefined;
    v.pieces.push_back(std::move(normalized));
    v.scores.push_back(score);
    v.kinds.push_back(kind);
  }
  if (left != 0) {
    throw Error(path + ": " + std::to_string(left) + " bytes remain after the model's vocab_size (" +
                std::to_string(vocab_size) + ") tokens: the tokenizer's vocabulary is larger than the model's");
  }
  return std::make_unique<SpmTokenizer>(std::move(v));
}

// ---- streaming decode ------------------------------------------------------------------------

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  for (const auto& ch : unicode::decode_utf8(s)) {
    out += (ch.cp == 0xFFFD && ch.len == 1) ? std::string("\xEF\xBF\xBD") : std::string(s.substr(ch.offset, ch.len));
  }
  return out;
}

std::string TextDecoder::push(int id) {
  pending_ += tok_.token_bytes(id, prev_);
  prev_ = id;
  const std::size_t n = unicode::complete_utf8_prefix(pending_);
  std::string out = sanitize_utf8(std::string_view(pending_).substr(0, n));
  pending_.erase(0, n);
  return out;
}

std::string TextDecoder::flush() {
  std::string out = sanitize_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace llm
