// tokenizer.cpp: what both tokenizers share: the vocabulary, special-token splitting, the
// loaders for GGUF and llama2.c tokenizer files, and the streaming UTF-8 decoder.
#include "common/tokenizer.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "common/gguf.h"
#include "common/mapped_file.h"
#include "common/tokenizer_bpe.h"
#include "common/tokenizer_spm.h"
#include "common/unicode.h"

namespace llm {

Tokenizer::Tokenizer(Vocabulary vocab) : vocab_(std::move(vocab)) {
  const int n = static_cast<int>(vocab_.pieces.size());
  if (n == 0) throw Error(vocab_.source + ": the tokenizer has no tokens");
  if (vocab_.kinds.empty()) vocab_.kinds.assign(vocab_.pieces.size(), TokenKind::Normal);
  for (int id = 0; id < n; ++id) piece_to_id_.emplace(vocab_.pieces[static_cast<std::size_t>(id)], id);
  auto check_id = [&](const char* what, int id) {
    if (id < -1 || id >= n)
      throw Error(vocab_.source + ": " + what + " token id " + std::to_string(id) + " is outside the vocabulary of " +
                  std::to_string(n));
  };
  check_id("BOS", vocab_.bos_id);
  check_id("EOS", vocab_.eos_id);
  check_id("UNK", vocab_.unk_id);
  if (vocab_.eos_id >= 0) stop_ids_.push_back(vocab_.eos_id);
  for (const char* end_of_turn : {"<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|end|>"}) {
    const int id = find(end_of_turn);
    if (id >= 0 && std::find(stop_ids_.begin(), stop_ids_.end(), id) == stop_ids_.end()) stop_ids_.push_back(id);
  }
}

int Tokenizer::find(std::string_view piece) const {
  auto it = piece_to_id_.find(std::string(piece));
  return it == piece_to_id_.end() ? -1 : it->second;
}

std::vector<int> Tokenizer::encode_prompt(std::string_view text) const {
  std::vector<int> ids;
  if (vocab_.add_bos && vocab_.bos_id >= 0) ids.push_back(vocab_.bos_id);
  auto body = encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  TextDecoder d(*this);
  std::string out;
  for (int id : ids) out += d.push(id);
  return out + d.flush();
}

std::vector<Tokenizer::Segment> Tokenizer::split_special(std::string_view text, bool control_too) const {
  // The special pieces, longest first so that "<|im_start|>" wins over a shorter prefix.
  std::vector<int> specials;
  for (int id = 0; id < vocab_size(); ++id) {
    const TokenKind k = vocab_.kinds[static_cast<std::size_t>(id)];
    if ((k == TokenKind::UserDefined || (control_too && k == TokenKind::Control)) && !piece(id).empty())
      specials.push_back(id);
  }
  std::sort(specials.begin(), specials.end(), [&](int a, int b) { return piece(a).size() > piece(b).size(); });

  std::vector<Segment> out;
  std::size_t start = 0, i = 0;
  while (i < text.size()) {
    int hit = -1;
    for (int id : specials) {
      const std::string& p = piece(id);
      if (text.compare(i, p.size(), p) == 0) {
        hit = id;
        break;
      }
    }
    if (hit < 0) {
      ++i;
      continue;
    }
    if (i > start) out.push_back({-1, text.substr(start, i - start)});
    out.push_back({hit, text.substr(i, piece(hit).size())});
    i += piece(hit).size();
    start = i;
  }
  if (start < text.size()) out.push_back({-1, text.substr(start)});
  return out;
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
    for (auto t : types) v.kinds.push_back((t >= 1 && t <= 6) ? static_cast<TokenKind>(t) : TokenKind::Normal);
  }
  v.bos_id = static_cast<int>(f.get_int("tokenizer.ggml.bos_token_id", -1));
  v.eos_id = static_cast<int>(f.get_int("tokenizer.ggml.eos_token_id", -1));
  v.unk_id = static_cast<int>(f.get_int("tokenizer.ggml.unknown_token_id", -1));
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
  std::int32_t max_len = 0;
  take(&max_len, 4, "max_token_length");
  if (max_len <= 0 || max_len > (1 << 16))
    throw Error(path + ": max_token_length is " + std::to_string(max_len) + ": not a llama2.c tokenizer.bin?");
  Vocabulary v;
  v.source = path;
  v.bos_id = 1;  // llama2.c's fixed convention (the Llama 2 SentencePiece ids)
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
    else if (normalized.size() == 6 && normalized.rfind("<0x", 0) == 0 && normalized[5] == '>')
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
