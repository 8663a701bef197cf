#include "openai_api.h"

#include <cmath>
#include <limits>

namespace llm::stage08 {

using nlohmann::json;

namespace {

std::string type_name(const json& v) { return v.type_name(); }

ApiError bad(const std::string& field, const std::string& what) { return ApiError(400, field + ": " + what, field); }

double number_field(const json& body, const std::string& field, double lo, double hi) {
  const json& v = body.at(field);
  if (!v.is_number()) throw bad(field, "expected a number, got " + type_name(v));
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    throw bad(field, v.dump() + " is out of range [" + json(lo).dump() + ", " + json(hi).dump() + "]");
  return x;
}

long long integer_field(const json& body, const std::string& field, long long lo, long long hi) {
  const json& v = body.at(field);
  if (!v.is_number_integer()) throw bad(field, "expected an integer, got " + (v.is_number() ? v.dump() : type_name(v)));
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(hi))
    throw bad(field, v.dump() + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  const long long x = v.is_number_unsigned() ? static_cast<long long>(v.get<std::uint64_t>()) : v.get<long long>();
  if (x < lo || x > hi)
    throw bad(field, v.dump() + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

std::string string_field(const json& v, const std::string& field) {
  if (!v.is_string()) throw bad(field, "expected a string, got " + type_name(v));
  return v.get<std::string>();
}

bool given(const json& body, const char* field) { return body.contains(field) && !body.at(field).is_null(); }

}  // namespace

json error_body(const ApiError& e) {
  return {{"error",
           {{"message", e.what()},
            {"type", e.type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

CompletionParams parse_completion(const std::string& text, bool chat, const std::string& served_model) {
  json body;
  try {
    body = json::parse(text);
  } catch (const json::parse_error& e) {
    throw ApiError(400, std::string("invalid JSON in the request body: ") + e.what());
  }
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object, got " + type_name(body));
  CompletionParams p;
  p.chat = chat;
  if (!given(body, "model")) throw bad("model", "required");
  p.model = string_field(body.at("model"), "model");
  if (!served_model.empty() && p.model != served_model)
    throw ApiError(400, "model: '" + p.model + "' is not served here (GET /v1/models lists '" + served_model + "')",
                   "model", "invalid_request_error", "model_not_found");
  if (chat) {
    if (!given(body, "messages")) throw bad("messages", "required");
    const json& m = body.at("messages");
    if (!m.is_array() || m.empty()) throw bad("messages", "expected a non-empty array, got " + m.dump().substr(0, 80));
    for (std::size_t i = 0; i < m.size(); ++i) {
      const std::string at = "messages[" + std::to_string(i) + "]";
      if (!m[i].is_object()) throw bad(at, "expected an object, got " + type_name(m[i]));
      if (!m[i].contains("role")) throw bad(at + ".role", "required");
      if (!m[i].contains("content")) throw bad(at + ".content", "required");
      ChatMessage msg{string_field(m[i].at("role"), at + ".role"), string_field(m[i].at("content"), at + ".content")};
      if (msg.role != "system" && msg.role != "user" && msg.role != "assistant")
        throw bad(at + ".role", "'" + msg.role + "' is not one of system, user, assistant");
      p.messages.push_back(std::move(msg));
    }
  } else {
    if (!given(body, "prompt")) throw bad("prompt", "required");
    const json& v = body.at("prompt");
    if (v.is_array()) {  // OpenAI takes a list of prompts; n = 1 here, so a list of one
      if (v.size() != 1) throw bad("prompt", "this server takes one prompt, got a list of " + std::to_string(v.size()));
      p.prompt = string_field(v[0], "prompt[0]");
    } else {
      p.prompt = string_field(v, "prompt");
    }
  }
  const char* max_field = chat && given(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (given(body, max_field)) p.max_tokens = static_cast<int>(integer_field(body, max_field, 1, 1 << 20));
  if (given(body, "temperature")) p.temperature = static_cast<float>(number_field(body, "temperature", 0.0, 2.0));
  if (given(body, "top_p")) {
    p.top_p = static_cast<float>(number_field(body, "top_p", 0.0, 1.0));
    if (p.top_p <= 0.0f) throw bad("top_p", "must be above 0");
  }
  if (given(body, "top_k")) p.top_k = static_cast<int>(std::max(0LL, integer_field(body, "top_k", -1, 1 << 24)));
  if (given(body, "seed"))
    p.seed = static_cast<std::uint64_t>(integer_field(body, "seed", 0, std::numeric_limits<long long>::max()));
  if (given(body, "n") && integer_field(body, "n", 1, 1 << 20) != 1) throw bad("n", "only n = 1 is served");
  if (given(body, "stop")) {
    const json& v = body.at("stop");
    if (v.is_string()) {
      p.stop.push_back(v.get<std::string>());
    } else if (v.is_array()) {
      if (v.size() > 4) throw bad("stop", "at most 4 sequences, got " + std::to_string(v.size()));
      for (std::size_t i = 0; i < v.size(); ++i) p.stop.push_back(string_field(v[i], "stop[" + std::to_string(i) + "]"));
    } else {
      throw bad("stop", "expected a string or an array of strings, got " + type_name(v));
    }
    for (const std::string& s : p.stop) {
      if (s.empty()) throw bad("stop", "a stop sequence is empty");
      if (s.size() > 256) throw bad("stop", "a stop sequence is longer than 256 bytes");
    }
  }
  if (given(body, "stream")) {
    if (!body.at("stream").is_boolean()) throw bad("stream", "expected a boolean, got " + type_name(body.at("stream")));
    p.stream = body.at("stream").get<bool>();
  }
  if (given(body, "stream_options")) {
    const json& o = body.at("stream_options");
    if (!o.is_object()) throw bad("stream_options", "expected an object, got " + type_name(o));
    if (given(o, "include_usage")) {
      if (!o.at("include_usage").is_boolean()) throw bad("stream_options.include_usage", "expected a boolean");
      p.include_usage = o.at("include_usage").get<bool>();
    }
  }
  return p;
}

void check_fits(int prompt_tokens, int max_tokens, int context) {
  if (prompt_tokens >= context)
    throw ApiError(400,
                   "prompt: " + std::to_string(prompt_tokens) + " tokens, but the model's context is " +
                       std::to_string(context) + " (and at least one token must be generated)",
                   "prompt", "invalid_request_error", "context_length_exceeded");
  if (static_cast<long long>(prompt_tokens) + max_tokens > context)
    throw ApiError(400,
                   "max_tokens: " + std::to_string(max_tokens) + " with a prompt of " + std::to_string(prompt_tokens) +
                       " tokens exceeds the model's context of " + std::to_string(context) + " (at most " +
                       std::to_string(context - prompt_tokens) + ")",
                   "max_tokens", "invalid_request_error", "context_length_exceeded");
}

json usage(int prompt_tokens, int completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

json completion_response(const CompletionParams& p, const std::string& id, std::int64_t created, const std::string& text,
                         const std::string& finish_reason, int prompt_tokens, int completion_tokens,
                         const std::vector<int>& token_ids) {
  json choice = {{"index", 0}, {"finish_reason", finish_reason.empty() ? json(nullptr) : json(finish_reason)},
                 {"logprobs", nullptr}, {"token_ids", token_ids}};  // token_ids: an extension, for checks
  if (p.chat) choice["message"] = {{"role", "assistant"}, {"content", text}};
  else choice["text"] = text;
  return {{"id", id},
          {"object", p.chat ? "chat.completion" : "text_completion"},
          {"created", created},
          {"model", p.model},
          {"choices", json::array({choice})},
          {"usage", usage(prompt_tokens, completion_tokens)}};
}

json stream_chunk(const CompletionParams& p, const std::string& id, std::int64_t created, const std::string& text,
                  const std::string& finish_reason, bool first) {
  json choice = {{"index", 0}, {"finish_reason", finish_reason.empty() ? json(nullptr) : json(finish_reason)},
                 {"logprobs", nullptr}};
  if (p.chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty() || first) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  return {{"id", id},
          {"object", p.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", p.model},
          {"choices", json::array({choice})}};
}

StreamChunkText::StreamChunkText(const CompletionParams& p, const std::string& id, std::int64_t created) {
  // A placeholder no text can contain once escaped (a control character is written \u0001).
  const std::string mark = "\x01piece\x01";
  const json quoted = mark;
  const std::string marked = quoted.dump(-1, ' ', false, json::error_handler_t::replace);
  const std::string whole =
      stream_chunk(p, id, created, mark, "", false).dump(-1, ' ', false, json::error_handler_t::replace);
  const std::size_t at = whole.find(marked);
  before_ = whole.substr(0, at);
  after_ = whole.substr(at + marked.size());
}

std::string StreamChunkText::operator()(const std::string& text) const {
  return before_ + json(text).dump(-1, ' ', false, json::error_handler_t::replace) + after_;
}

std::string sse_event(const std::string& data) {
  // BEGIN EXERCISE(sse-frame): frame `data` as one server-sent event: each line "data: <line>", then a blank line
  std::string out;
  std::size_t start = 0;
  for (;;) {  // a newline inside the data would end the field: every line gets its own "data:"
    const std::size_t end = data.find('\n', start);
    out += "data: " + data.substr(start, end == std::string::npos ? std::string::npos : end - start) + "\n";
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out + "\n";
  // END EXERCISE
}

}  // namespace llm::stage08
