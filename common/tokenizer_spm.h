// tokenizer_spm.h: SentencePiece-style BPE (llama2.c tokenizer.bin, GGUF "llama").
//
// Encoding: spaces become U+2581 ("▁"), a "▁" is prepended (the dummy prefix), the text is
// cut into characters (a character missing from the vocabulary falls back to its UTF-8 bytes
// as <0xXX> tokens), then the adjacent pair whose merged piece has the highest score is merged
// until no merge is in the vocabulary. The candidates wait in a priority queue over a linked list
// of symbols, so a segment of n characters costs O(n log n).
#pragma once

#include "common/tokenizer.h"

namespace llm {

class SpmTokenizer : public Tokenizer {
 public:
  /// Throws llm::Error if the scores are not one per token, or if some byte could not be encoded
  /// (no <0xNN> token, no one-character piece for it, and no UNK id).
  explicit SpmTokenizer(Vocabulary vocab);
  std::string token_bytes(int id, int prev) const override;

 protected:
  void encode_into(std::string_view text, std::size_t stop_after, std::vector<int>& out) const override;

 private:
  void encode_segment(std::string_view text, std::vector<int>& out) const;
  int byte_ids_[256];  // id of <0xXX>, or -1 when the vocabulary has no byte fallback
};

}  // namespace llm
