#include "common/chat_template.h"

#include "common/error.h"
#include "common/tokenizer.h"

namespace llm {

namespace {
// The system message a ChatML template inserts when the conversation has none, as written in
// SmolLM2's template: ... '<|im_start|>system\nYou are ...<|im_end|>\n' ...
std::string default_system_message(const std::string& tmpl) {
  const std::string open = "<|im_start|>system\n";
  const auto at = tmpl.find(open);
  if (at == std::string::npos) return "";
  const auto begin = at + open.size();
  const auto end = tmpl.find("<|im_end|>", begin);
  if (end == std::string::npos) return "";
  const std::string text = tmpl.substr(begin, end - begin);
  // Only a literal string: a Jinja expression ({{ ... }}) means the template builds it itself.
  return text.find("{{") == std::string::npos && text.find("{%") == std::string::npos ? text : "";
}
}  // namespace

std::string apply_chat_template(const Tokenizer& tok, const std::string& model_path, const std::string& user_message,
                                const std::string& system_message) {
  const std::string& tmpl = tok.vocab().chat_template;
  const bool chatml = tmpl.find("<|im_start|>") != std::string::npos || (tmpl.empty() && tok.find("<|im_start|>") >= 0);
  if (!chatml) {
    if (tmpl.empty())
      throw Error(model_path + ": --chat: the model has no chat template (tokenizer.chat_template is missing)");
    throw Error(model_path + ": --chat: the model's chat template is not ChatML, the only family this engine renders");
  }
  const std::string system = system_message.empty() ? default_system_message(tmpl) : system_message;
  std::string out;
  if (!system.empty()) out += "<|im_start|>system\n" + system + "<|im_end|>\n";
  out += "<|im_start|>user\n" + user_message + "<|im_end|>\n<|im_start|>assistant\n";
  return out;
}

}  // namespace llm
