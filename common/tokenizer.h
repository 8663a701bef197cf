// tokenizer.h: text <-> token ids. Two algorithms behind one interface:
//   - SentencePiece-style BPE with scores and byte fallback (llama2.c tokenizer.bin, GGUF
//     tokenizer.ggml.model = "llama"): tokenizer_spm.cpp
//   - byte-level BPE with merge ranks and a regex pre-tokenizer (GGUF "gpt2", as SmolLM2,
//     Llama 3 and Qwen use): tokenizer_bpe.cpp
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace llm {

class GGUFFile;

/// Token kinds as GGUF's tokenizer.ggml.token_type numbers them.
enum class TokenKind : std::int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

/// Everything a tokenizer file says about its vocabulary.
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
};

/// Converts between text and token ids.
class Tokenizer {
 public:
  explicit Tokenizer(Vocabulary vocab);
  virtual ~Tokenizer() = default;

  /// Token ids for `text` (UTF-8), without BOS. Special tokens written in the text
  /// (such as "<|im_start|>") become their single ids.
  virtual std::vector<int> encode(std::string_view text) const = 0;
  /// The bytes token `id` stands for, given the token before it (-1 at the start).
  /// SentencePiece control tokens (<s>, </s>) give ""; byte-level BPE special tokens give their
  /// own text, as Hugging Face decodes them. The bytes of one token may be part of a UTF-8
  /// character; TextDecoder joins them.
  virtual std::string token_bytes(int id, int prev) const = 0;

  /// encode() with BOS prepended when the vocabulary asks for it.
  std::vector<int> encode_prompt(std::string_view text) const;
  /// All of `ids` as text (bytes joined, then invalid UTF-8 replaced by U+FFFD).
  std::string decode(const std::vector<int>& ids) const;

  int vocab_size() const { return static_cast<int>(vocab_.pieces.size()); }
  int bos_id() const { return vocab_.bos_id; }
  int eos_id() const { return vocab_.eos_id; }
  /// Ids that end generation: EOS plus, for chat models, the end-of-turn token.
  const std::vector<int>& stop_ids() const { return stop_ids_; }
  /// The id whose piece is exactly `piece`, or -1.
  int find(std::string_view piece) const;
  const std::string& piece(int id) const { return vocab_.pieces.at(static_cast<std::size_t>(id)); }
  const Vocabulary& vocab() const { return vocab_; }

 protected:
  /// Splits text into (special token id or -1, text span) runs so that special tokens written in
  /// the text are kept whole. `kinds` says which token kinds count as special.
  struct Segment {
    int special_id;  ///< -1 for ordinary text
    std::string_view text;
  };
  std::vector<Segment> split_special(std::string_view text, bool control_too) const;

  Vocabulary vocab_;
  std::unordered_map<std::string, int> piece_to_id_;
  std::vector<int> stop_ids_;
};

/// Reads the tokenizer stored in a GGUF file (tokenizer.ggml.*). Throws llm::Error naming the
/// file and key if it is missing or malformed, or if its model type is neither "llama" nor
/// "gpt2".
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GGUFFile& file);

/// Reads a llama2.c tokenizer.bin: i32 max_token_length, then for each of `vocab_size` tokens
/// f32 score, i32 length, bytes. Throws llm::Error if the file holds fewer or more tokens than
/// the model's vocab_size.
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
