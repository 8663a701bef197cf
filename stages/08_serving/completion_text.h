// completion_text.h: a request's generated tokens as the text a client sees. Tokens become UTF-8
// through the tokenizer's streaming decoder; the stop token itself is not text; with `stop`
// strings, generation ends before the first one, so the text that could still be the start of
// one is held back until it is known not to be.
#pragma once

#include <string>
#include <vector>

#include "common/engine.h"
#include "common/tokenizer.h"

namespace llm::stage08 {

class CompletionText {
 public:
  /// `prev`: the prompt's last token (some tokenizers decode a piece by what precedes it).
  CompletionText(const Tokenizer& tok, int prev, std::vector<std::string> stop);
  /// Adds a generated token; returns the text that can be sent now (possibly empty). After a
  /// stop string matched, returns "" and ignores further tokens.
  std::string push(int token);
  /// The end of generation: whatever was held back (nothing after a stop string).
  std::string finish();
  /// A stop string ended the text.
  bool stop_matched() const { return matched_; }
  /// Everything sent so far.
  const std::string& sent() const { return sent_text_; }

 private:
  std::string take(std::size_t end);

  const Tokenizer& tok_;
  TextDecoder decoder_;
  std::vector<std::string> stop_;
  std::size_t hold_ = 0;  ///< bytes to hold back: the longest stop string's length - 1
  std::string pending_;   ///< decoded, not yet sent
  std::string sent_text_;
  bool matched_ = false;
};

}  // namespace llm::stage08
