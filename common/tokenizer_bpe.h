// tokenizer_bpe.h: byte-level BPE with merge ranks (GGUF "gpt2"; SmolLM2, Llama 3, Qwen).
//
// Encoding: special tokens are cut out first; the rest is split into chunks by the model's
// pre-tokenizer (a fixed regex, hand-written here), each chunk's bytes are mapped to printable
// characters (GPT-2's byte-to-unicode table), and the adjacent pair with the lowest merge rank
// (the leftmost of equals) is merged until no pair has a rank. Each final piece is a vocabulary
// token. The merging keeps its candidate pairs in a priority queue over a linked list of symbols,
// as llama.cpp and tiktoken do, so a chunk of n bytes costs O(n log n), not O(n^2).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/tokenizer.h"

namespace llm {

class BpeTokenizer : public Tokenizer {
 public:
  /// Throws llm::Error if the pre-tokenizer named in the vocabulary is not supported, or if a
  /// merge is malformed (naming tokenizer.ggml.merges[i] and its text): no space, an empty half,
  /// a half that is not a token, or a merged piece that is not a token (Hugging Face refuses
  /// these too). Byte-level BPE needs a token for each of the 256 byte characters, or an UNK id.
  explicit BpeTokenizer(Vocabulary vocab);
  std::string token_bytes(int id, int prev) const override;

  /// The pre-tokenizer's chunks of `text` (exposed for tests). Linear in the text.
  std::vector<std::string_view> pre_tokenize(std::string_view text) const;

 protected:
  void encode_into(std::string_view text, std::size_t stop_after, std::vector<int>& out) const override;

 private:
  void encode_chunk(std::string_view chunk, std::vector<int>& out) const;

  struct Merge {
    int rank;    // its index in the merges list: lower merges first
    int result;  // id of the merged piece
  };
  static std::uint64_t pair_key(int left, int right) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) | static_cast<std::uint32_t>(right);
  }

  bool split_digits_ = false;                        // each digit is its own chunk first
  std::unordered_map<std::uint64_t, Merge> merges_;  // (left id, right id) -> merge
  int byte_char_id_[256];                            // id of each byte's printable stand-in, or -1
  std::unordered_map<char32_t, unsigned char> char_to_byte_;
};

}  // namespace llm
