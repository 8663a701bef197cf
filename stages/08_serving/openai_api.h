// openai_api.h: the OpenAI HTTP API's JSON, both ways. Parsing a /v1/completions or
// /v1/chat/completions body into checked settings (every bad field an ApiError naming it, as
// OpenAI's errors do), the response and streaming-chunk objects, the error object, and the
// server-sent-events framing the streaming responses use.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace llm::stage08 {

/// A request the server refuses: HTTP status, OpenAI error type, the offending field (param).
struct ApiError : std::runtime_error {
  ApiError(int http_status, const std::string& message, std::string field = "",
           std::string error_type = "invalid_request_error", std::string error_code = "")
      : std::runtime_error(message), status(http_status), param(std::move(field)), type(std::move(error_type)),
        code(std::move(error_code)) {}
  int status;
  std::string param, type, code;
};

/// {"error": {"message", "type", "param", "code"}}, param and code null when empty.
nlohmann::json error_body(const ApiError& e);

/// One chat message (role: system, user or assistant).
struct ChatMessage {
  std::string role, content;
};

/// A completion request, checked. Token-level limits (prompt + max_tokens within the context)
/// are checked once the prompt is tokenized (check_fits).
struct CompletionParams {
  bool chat = false;
  std::string model;
  std::string prompt;                 ///< /v1/completions
  std::vector<ChatMessage> messages;  ///< /v1/chat/completions
  std::optional<int> max_tokens;      ///< absent: the server's default, lowered to fit
  float temperature = 1.0f;           ///< OpenAI's default
  float top_p = 1.0f;
  int top_k = 0;                      ///< extension (vLLM's); 0 or -1 = off
  std::optional<std::uint64_t> seed;  ///< absent: a fresh one per request
  std::vector<std::string> stop;      ///< up to 4 strings; generation ends before any of them
  bool stream = false;
  bool include_usage = false;         ///< stream_options.include_usage
};

/// Parses and checks a body. `served_model` is the only model name accepted ("" = any).
/// Throws ApiError (400, naming the field) for invalid JSON, a wrong type, a value out of range,
/// n != 1, an unknown model.
CompletionParams parse_completion(const std::string& body, bool chat, const std::string& served_model);

/// Throws ApiError 400 when `prompt_tokens` + `max_tokens` do not fit `context`.
void check_fits(int prompt_tokens, int max_tokens, int context);

/// The objects the server sends (OpenAI's shapes). `text` is the whole text (response) or this
/// chunk's (stream); finish_reason "" = null.
nlohmann::json completion_response(const CompletionParams& p, const std::string& id, std::int64_t created,
                                   const std::string& text, const std::string& finish_reason, int prompt_tokens,
                                   int completion_tokens, const std::vector<int>& token_ids);
nlohmann::json stream_chunk(const CompletionParams& p, const std::string& id, std::int64_t created,
                            const std::string& text, const std::string& finish_reason, bool first);
nlohmann::json usage(int prompt_tokens, int completion_tokens);

/// A stream's middle chunks as text: stream_chunk(p, id, created, text, "", false), dumped, for
/// any non-empty `text`, made by splicing the text's JSON string into a chunk dumped once. A
/// streamed response sends one such chunk per token; building and dumping a JSON object for each
/// costs about 2 microseconds, this about 0.1 (measured on the 2-core Xeon).
class StreamChunkText {
 public:
  StreamChunkText(const CompletionParams& p, const std::string& id, std::int64_t created);
  /// The chunk's JSON, exactly as stream_chunk(...).dump(-1, ' ', false, replace) writes it.
  std::string operator()(const std::string& text) const;

 private:
  std::string before_, after_;
};

/// One server-sent event carrying `data` (one line of JSON, or [DONE]): "data: <data>\n\n".
std::string sse_event(const std::string& data);

}  // namespace llm::stage08
