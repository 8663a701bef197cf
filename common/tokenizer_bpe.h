// tokenizer_bpe.h: byte-level BPE with merge ranks (GGUF "gpt2"; SmolLM2, Llama 3, Qwen).
//
// Encoding: special tokens are cut out first; the rest is split into chunks by the model's
// pre-tokenizer (a fixed regex, hand-written here), each chunk's bytes are mapped to printable
// characters (GPT-2's byte-to-unicode table), and the adjacent pair with the lowest merge rank
// is merged until no pair has a rank. Each final piece is a vocabulary token.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "common/tokenizer.h"

namespace llm {

class BpeTokenizer : public Tokenizer {
 public:
  /// Throws llm::Error if the pre-tokenizer named in the vocabulary is not supported.
  explicit BpeTokenizer(Vocabulary vocab);
  std::vector<int> encode(std::string_view text) const override;
  std::string token_bytes(int id, int prev) const override;

  /// The pre-tokenizer's chunks of `text` (exposed for tests).
  std::vector<std::string_view> pre_tokenize(std::string_view text) const;

 private:
  void encode_chunk(std::string_view chunk, std::vector<int>& out) const;

  bool split_digits_ = false;                        // each digit is its own chunk first
  std::unordered_map<std::string, int> merge_rank_;  // "left right" -> rank
  std::string byte_to_char_[256];                    // UTF-8 of the printable stand-in
  std::unordered_map<char32_t, unsigned char> char_to_byte_;
};

}  // namespace llm
