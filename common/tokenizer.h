// tokenizer.h: text <-> token ids. Two algorithms behind one interface:
//   - SentencePiece-style BPE with scores and byte fallback (llama2.c tokenizer.bin, GGUF
//     tokenizer.ggml.model = "llama"): tokenizer_spm.cpp
//   - byte-level BPE with merge ranks and a regex pre-tokenizer (GGUF "gpt2", as SmolLM2,
//     Llama 3 and Qwen use): tokenizer_bpe.cpp
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/tokenizer_special.h"

namespace llm {

class GGUFFile;

/// Token kinds as GGUF's tokenizer.ggml.token_type numbers them.
enum class TokenKind : std::int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

/// Everything a tokenizer file says about its vocabulary. The Tokenizer constructor checks it
/// (see Tokenizer), so that a vocabulary that passes can encode any text and decode any id.
struct Vocabulary {
  std::vector<std::string> pieces;  ///< token id -> piece text as stored in the file
  std::vector<float> scores;        ///< SentencePiece merge scores (empty for byte-level BPE)
  std::vector<TokenKind> kinds;
  std::vector<std::string> merges;  ///< byte-level BPE: "left right", highest priority first
  int bos_id = -1;
  int eos_id = -1;
  int unk_id = -1;
  bool add_bos = false;          ///< prepend BOS when encoding a prompt
  bool add_space_prefix = true;  ///< SentencePiece: prepend a space to the text (dummy prefix)
  std::string pre_tokenizer;     ///< byte-level BPE pre-tokenizer name (tokenizer.ggml.pre)
  std::string chat_template;     ///< Jinja source from the file, may be empty
  std::string source;            ///< file it came from, for error messages
  /// How error messages name the arrays: "tokenizer.ggml." for GGUF (so "tokenizer.ggml.merges[17]"),
  /// "" for llama2.c ("tokens[17]").
  std::string field_prefix = "tokenizer.ggml.";
};

/// The byte a byte-fallback piece stands for: "<0x41>" -> 0x41 (either case of hex digit), or -1
/// if `piece` is not of that form.
int byte_piece_value(std::string_view piece);

/// Converts between text and token ids.
///
/// The constructor refuses (llm::Error naming the file, the field with its index, and the value)
/// a vocabulary that is empty or larger than the int range, whose kinds or scores do not have one
/// entry per token, with a non-finite score, a BYTE-kind token that is not <0xNN>, a BOS/EOS/UNK id
/// outside the vocabulary, malformed merges (see BpeTokenizer), or a byte that no token can stand
/// for when there is no UNK token (encode would have no id to give). Duplicate pieces are accepted,
/// as ggml accepts them: text maps to the first id with that piece, and every id decodes.
class Tokenizer {
 public:
  explicit Tokenizer(Vocabulary vocab);
  virtual ~Tokenizer() = default;

  /// Token ids for `text` (UTF-8), without BOS. Special tokens written in the text
  /// (such as "<|im_start|>") become their single ids. O(n log n) in the text's length.
  std::vector<int> encode(std::string_view text) const;
  /// The bytes token `id` stands for, given the token before it (-1 at the start).
  /// SentencePiece control tokens (<s>, </s>) give ""; byte-level BPE special tokens give their
  /// own text, as Hugging Face decodes them. The bytes of one token may be part of a UTF-8
  /// character; TextDecoder joins them.
  virtual std::string token_bytes(int id, int prev) const = 0;

  /// encode() with BOS prepended when the vocabulary asks for it.
  std::vector<int> encode_prompt(std::string_view text) const;
  /// encode_prompt() for a prompt that may be far too long: it stops as soon as the ids are known
  /// to number more than `max_tokens`, so a huge prompt costs about max_tokens tokens' work, not
  /// its own length. Returns the prompt's ids if there are at most `max_tokens` of them; otherwise
  /// exactly max_tokens + 1 ids, which are those of a prefix of the text (the prompt needs more).
  std::vector<int> encode_prompt(std::string_view text, std::size_t max_tokens) const;
  /// All of `ids` as text (bytes joined, then invalid UTF-8 replaced by U+FFFD).
  std::string decode(const std::vector<int>& ids) const;

  int vocab_size() const { return static_cast<int>(vocab_.pieces.size()); }
  int bos_id() const { return vocab_.bos_id; }
  int eos_id() const { return vocab_.eos_id; }
  /// Ids that end generation: EOS plus, for chat models, the end-of-turn token.
  const std::vector<int>& stop_ids() const { return stop_ids_; }
  /// The id whose piece is exactly `piece` (the first, if several are), or -1.
  int find(std::string_view piece) const;
  const std::string& piece(int id) const { return vocab_.pieces.at(static_cast<std::size_t>(id)); }
  const Vocabulary& vocab() const { return vocab_; }

 protected:
  /// Appends the ids of `text` (no BOS) to `out`. May return early once out.size() > stop_after:
  /// the ids so far are then a prefix's, which is all encode_prompt(text, max) needs to know.
  virtual void encode_into(std::string_view text, std::size_t stop_after, std::vector<int>& out) const = 0;

  /// Splits text into runs so that special tokens written in the text are kept whole:
  /// user-defined pieces, and control pieces too when `control_too`. Linear in the text.
  std::vector<TextSegment> split_special(std::string_view text, bool control_too) const;
  /// "<source>: <field_prefix><array>[<index>]", for error messages.
  std::string field(const char* array, std::size_t index) const;

  struct PieceHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  Vocabulary vocab_;
  std::unordered_map<std::string, int, PieceHash, std::equal_to<>> piece_to_id_;
  std::vector<int> stop_ids_;
  std::size_t max_token_bytes_ = 4;  // the most text bytes one id can stand for (a char for UNK)

 private:
  SpecialTokenMatcher user_defined_;  // UserDefined pieces
  SpecialTokenMatcher special_;       // UserDefined and Control pieces
};

/// Reads the tokenizer stored in a GGUF file (tokenizer.ggml.*). Throws llm::Error naming the
/// file and key if it is missing or malformed (a token_type outside 0..6, an id outside the
/// vocabulary or the int range, and everything the Tokenizer checks), or if its model type is
/// neither "llama" nor "gpt2".
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GGUFFile& file);

/// Reads a llama2.c tokenizer.bin: i32 max_token_length, then for each of `vocab_size` tokens
/// f32 score, i32 length, bytes. Throws llm::Error if the file holds fewer or more tokens than
/// the model's vocab_size, or if the vocabulary fails the Tokenizer's checks.
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path, int vocab_size);

/// Turns a stream of token ids into text, holding back bytes until they form complete UTF-8
/// characters (a character such as an emoji can span several byte tokens).
class TextDecoder {
 public:
  explicit TextDecoder(const Tokenizer& tok, int prev = -1) : tok_(tok), prev_(prev) {}
  /// The text that token `id` completes (possibly empty).
  std::string push(int id);
  /// Whatever is still held back, with invalid bytes replaced by U+FFFD.
  std::string flush();

 private:
  const Tokenizer& tok_;
  int prev_;
  std::string pending_;
};

/// Replaces every invalid UTF-8 byte in `s` with U+FFFD.
std::string sanitize_utf8(std::string_view s);

}  // namespace llm
