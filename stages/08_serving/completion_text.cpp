#include "completion_text.h"

#include <algorithm>

namespace llm::stage08 {

CompletionText::CompletionText(const Tokenizer& tok, int prev, std::vector<std::string> stop)
    : tok_(tok), decoder_(tok, prev), stop_(std::move(stop)) {
  for (const std::string& s : stop_) hold_ = std::max(hold_, s.size() - 1);
}

std::string CompletionText::take(std::size_t end) {
  std::string out = pending_.substr(0, end);
  pending_.erase(0, end);
  sent_text_ += out;
  return out;
}

std::string CompletionText::push(int token) {
  if (matched_ || is_stop(tok_.stop_ids(), token)) return "";
  pending_ += decoder_.push(token);
  // A stop string can only end in the new text; it starts at or after what was sent, since
  // hold_ bytes were kept back.
  std::size_t first = std::string::npos;
  for (const std::string& s : stop_) first = std::min(first, pending_.find(s));
  if (first != std::string::npos) {
    matched_ = true;
    std::string out = take(first);
    pending_.clear();
    return out;
  }
  if (pending_.size() <= hold_) return "";
  std::size_t end = pending_.size() - hold_;
  while (end > 0 && (static_cast<unsigned char>(pending_[end]) & 0xC0) == 0x80) --end;  // whole UTF-8 characters
  return take(end);
}

std::string CompletionText::finish() {
  if (matched_) return "";
  pending_ += decoder_.flush();
  return take(pending_.size());
}

}  // namespace llm::stage08
