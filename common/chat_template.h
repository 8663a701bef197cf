// chat_template.h: turning a user message into the token text a chat model was trained on.
//
// We do not run Jinja. We recognise the template family by its markers and render it in C++:
// ChatML (<|im_start|>role\n...<|im_end|>\n), used by SmolLM2 and Qwen. The default system
// message is taken from the template's own text when it has one.
#pragma once

#include <string>

namespace llm {

class Tokenizer;

/// The prompt text for one user turn, ending where the assistant's reply begins. Throws
/// llm::Error naming `model_path` if the model has no template or one we do not know.
std::string apply_chat_template(const Tokenizer& tok, const std::string& model_path, const std::string& user_message,
                                const std::string& system_message = "");

}  // namespace llm
