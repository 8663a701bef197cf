#include "openai_server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>

#include "common/chat_template.h"
#include "common/checked.h"
#include "common/error.h"
#include "client_socket.h"
#include "completion_text.h"
#include "openai_api.h"

namespace llm::stage08 {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

/// How long an HTTP thread waits for tokens before it checks on its client again.
constexpr auto kPoll = 100ms;
/// A streaming client that got nothing for this long gets an SSE comment, which also tells us
/// whether it is still there.
constexpr auto kKeepAlive = 1s;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump(error_body(e)), "application/json");
}

}  // namespace

extern const char* const kLivePage;  // live_page.cpp

struct OpenAiServer::Impl {
  const Model& model;
  OnlineEngine& engine;
  StreamWriter& writer;
  ServerMetrics& metrics;
  ServerOptions options;
  int default_max_tokens, block_size, kv_blocks;
  httplib::Server http;
  std::atomic<std::uint64_t> next_id{1};
  std::mt19937_64 seeds{std::random_device{}()};
  std::mutex seeds_mutex;

  Impl(const Model& m, OnlineEngine& e, StreamWriter& w, ServerMetrics& mx, ServerOptions o, int dmt, int bs, int nb)
      : model(m), engine(e), writer(w), metrics(mx), options(std::move(o)), default_max_tokens(dmt), block_size(bs),
        kv_blocks(nb) {}

  void refuse(httplib::Response& res, const ApiError& e) {
    metrics.refused(e.status);
    send_error(res, e);
  }

  std::string render_chat(const std::vector<ChatMessage>& messages) {
    // The chat template (common/chat_template.h) renders one user turn after an optional system
    // message; a longer history is refused rather than silently cut.
    std::string system, user;
    std::size_t i = 0;
    if (messages.size() == 2 && messages[0].role == "system") system = messages[i++].content;
    if (i + 1 != messages.size() || messages[i].role != "user")
      throw ApiError(400, "messages: this server renders one user message, optionally after one system message",
                     "messages");
    user = messages[i].content;
    try {
      return apply_chat_template(*model.tokenizer, model.path, user, system);
    } catch (const Error& e) {
      throw ApiError(400, std::string("messages: ") + e.what(), "messages");
    }
  }

  /// The engine request for a checked body: tokenized, limits checked.
  Request build(const CompletionParams& p) {
    const std::string text = p.chat ? render_chat(p.messages) : p.prompt;
    const int ctx = model.config().context_length;
    Request r;
    // Tokenizing stops once the prompt cannot fit, so a huge prompt costs little.
    r.prompt = model.tokenizer->encode_prompt(text, static_cast<std::size_t>(ctx));
    const int n = static_cast<int>(r.prompt.size());
    if (n == 0) throw ApiError(400, "prompt: encodes to no tokens", p.chat ? "messages" : "prompt");
    r.max_new_tokens = p.max_tokens.value_or(std::max(1, std::min(default_max_tokens, ctx - n)));
    check_fits(n, r.max_new_tokens, ctx);
    // The last token needs no K/V; the whole pool must hold the rest (else it could never run).
    const int blocks = ceil_div(n + r.max_new_tokens - 1, block_size);
    if (blocks > kv_blocks)
      throw ApiError(400,
                     "max_tokens: prompt + max_tokens need " + std::to_string(blocks) + " KV blocks but the pool has " +
                         std::to_string(kv_blocks),
                     "max_tokens");
    r.sampling.temperature = p.temperature;
    r.sampling.top_p = p.top_p;
    r.sampling.top_k = p.top_k;
    if (p.seed) {
      r.sampling.seed = *p.seed;
    } else {
      std::lock_guard lock(seeds_mutex);
      r.sampling.seed = seeds();
    }
    return r;
  }

  void completion(const httplib::Request& req, httplib::Response& res, bool chat) {
    CompletionParams p;
    Request request;
    try {
      p = parse_completion(req.body, chat, options.model_name);
      request = build(p);
    } catch (const ApiError& e) {
      return refuse(res, e);
    }
    const std::string id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id++);
    request.id = id;
    const int prompt_tokens = static_cast<int>(request.prompt.size());
    const int prev = request.prompt.back();
    auto stream = std::make_shared<RequestStream>();
    std::string why;
    const std::uint64_t handle = engine.submit(std::move(request), stream, why);
    if (handle == 0) {
      const bool failed = !engine.failure().empty();
      return refuse(res, ApiError(failed ? 503 : 429, why, "", failed ? "server_error" : "rate_limit_exceeded"));
    }
    const int client = find_client_socket(req.remote_addr, req.remote_port, req.local_port);
    if (p.stream) return stream_response(res, p, id, handle, stream, prompt_tokens, prev, client);

    // Not streamed: wait for the whole completion (the loop ends with the request, which is
    // bounded by max_tokens; an engine failure ends it too). Every kPoll the client's socket is
    // peeked at: a client that has gone cancels the request, as a failed write does for a stream.
    CompletionText text(*model.tokenizer, prev, p.stop);
    std::vector<int> tokens;
    std::string out;
    std::optional<RequestResult> result;
    std::size_t seen = 0;
    while (!result) {
      result = stream->take(tokens, kPoll);
      for (; seen < tokens.size() && !text.stop_matched(); ++seen) out += text.push(tokens[seen]);
      if (text.stop_matched()) {
        engine.cancel(handle);
        break;
      }
      if (!result && client >= 0 && peer_closed(client)) {
        engine.cancel(handle);  // its blocks go back at the engine's next poll
        // nginx's "client closed request", which nobody reads; with a body, so that the error
        // handler leaves it alone (it is no refusal).
        return send_error(res, ApiError(499, "the client closed the connection", "", "client_closed"));
      }
    }
    const bool by_string = text.stop_matched();
    if (!by_string) {
      if (!result->rejected.empty())
        return send_error(res, ApiError(503, "the engine refused the request: " + result->rejected, "", "server_error"));
      if (!result->error.empty())
        return send_error(res, ApiError(500, "generation failed: " + result->error, "", "server_error"));
      out += text.finish();
    }
    tokens.resize(seen);
    const std::string reason = by_string || result->stopped ? "stop" : "length";
    res.set_content(dump(completion_response(p, id, unix_now(), out, reason, prompt_tokens,
                                             static_cast<int>(tokens.size()), tokens)),
                    "application/json");
  }

  // Streamed: one SSE event per piece of text as tokens come, then the final chunk with the
  // finish reason, the usage (if asked) and [DONE]. The writer thread (stream_writer.h) writes
  // them, once per engine step for every stream; this connection's HTTP thread only waits inside
  // cpp-httplib's content provider meanwhile. A client that goes away makes a write fail: the
  // provider then returns false, and the releaser cancels the request, which frees its blocks
  // before the next step.
  struct Streamed final : StreamWriter::Stream {
    Impl& server;
    CompletionParams p;
    std::string id;
    std::uint64_t handle;
    std::shared_ptr<RequestStream> stream;
    CompletionText text;
    int prompt_tokens;
    int fd;  ///< the client's socket, polled before a write so that a client that does not read is skipped
    std::int64_t created = unix_now();
    StreamChunkText middle{p, id, created};  ///< a token's chunk without a JSON object per token

    std::mutex m;  // everything below; held while writing
    std::condition_variable ended;
    httplib::DataSink* sink = nullptr;  ///< set while the HTTP thread waits inside the provider
    std::vector<int> tokens = {};
    std::size_t seen = 0;
    bool first = true, over = false, failed = false, detached = false;
    std::chrono::steady_clock::time_point last_write = std::chrono::steady_clock::now();

    Streamed(Impl& s, CompletionParams params, std::string i, std::uint64_t h, std::shared_ptr<RequestStream> rs,
             CompletionText t, int n, int socket)
        : server(s), p(std::move(params)), id(std::move(i)), handle(h), stream(std::move(rs)), text(std::move(t)),
          prompt_tokens(n), fd(socket) {}

    bool pump() override {
      std::lock_guard lock(m);
      const bool more = pump_locked();
      if (over || failed) ended.notify_all();
      return more;
    }

    // Under m: formats what came since the last write and writes it, when the HTTP thread is
    // inside the provider (sink set) and the socket takes bytes now. Returns false once the
    // writer need not come back.
    bool pump_locked() {
      if (detached || over || failed) return false;
      if (sink == nullptr) return true;  // the HTTP thread is between two calls of the provider: the next round
      const auto now = std::chrono::steady_clock::now();
      const bool keep_alive_due = now - last_write >= kKeepAlive;
      // Most rounds most streams have nothing new (they wait in the queue): no system call then.
      if ((!stream->has_news() && !keep_alive_due) || !writable_now(fd)) return true;
      try {
        std::optional<RequestResult> result = stream->take_now(tokens);
        std::string out;
        auto chunk = [&](const std::string& piece, const std::string& reason) {
          const bool middle_chunk = !first && reason.empty() && !piece.empty();
          out += sse_event(middle_chunk ? middle(piece) : dump(stream_chunk(p, id, created, piece, reason, first)));
          first = false;
        };
        for (; seen < tokens.size() && !text.stop_matched(); ++seen) {
          const std::string piece = text.push(tokens[seen]);
          if (!piece.empty()) chunk(piece, "");
        }
        if (text.stop_matched()) server.engine.cancel(handle);
        if (result || text.stop_matched()) {
          if (result && !text.stop_matched() && (!result->rejected.empty() || !result->error.empty())) {
            const std::string why = result->rejected.empty() ? result->error : result->rejected;
            out += sse_event(dump(error_body(ApiError(500, "generation failed: " + why, "", "server_error"))));
          } else {
            const std::string rest = text.finish();
            if (!rest.empty()) chunk(rest, "");
            chunk("", text.stop_matched() || result->stopped ? "stop" : "length");
            if (p.include_usage) {
              json u = stream_chunk(p, id, created, "", "", false);
              u["choices"] = json::array();
              u["usage"] = usage(prompt_tokens, static_cast<int>(seen));
              out += sse_event(dump(u));
            }
          }
          out += sse_event("[DONE]");
        }
        if (out.empty() && keep_alive_due) out = ": keep-alive\n\n";
        if (!out.empty()) {
          if (!sink->write(out.data(), out.size())) {
            failed = true;  // the client has gone
            return false;
          }
          last_write = now;
        }
        over = result.has_value() || text.stop_matched();
      } catch (const std::exception&) {  // formatting failed (out of memory): end this stream, not the writer
        failed = true;
      }
      return !over && !failed;
    }
  };

  void stream_response(httplib::Response& res, const CompletionParams& p, const std::string& id, std::uint64_t handle,
                       std::shared_ptr<RequestStream> stream, int prompt_tokens, int prev, int fd) {
    auto st = std::make_shared<Streamed>(*this, p, id, handle, std::move(stream),
                                         CompletionText(*model.tokenizer, prev, p.stop), prompt_tokens, fd);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [st](std::size_t, httplib::DataSink& sink) {
          std::unique_lock lock(st->m);
          st->sink = &sink;
          st->pump_locked();  // what came while this thread was away
          // Returns every kPoll even mid-stream, so that cpp-httplib can notice a server that stops.
          st->ended.wait_for(lock, kPoll, [&] { return st->over || st->failed; });
          st->sink = nullptr;
          if (st->failed) return false;
          if (st->over) sink.done();
          return true;
        },
        [this, st](bool) {
          std::lock_guard lock(st->m);
          st->detached = true;  // the connection is done with: the writer must not touch it again
          if (!st->over) engine.cancel(st->handle);  // disconnected (or the server stopped) mid-stream
        });
    writer.add(st);
  }

  void routes() {
    http.new_task_queue = [n = options.http_threads] { return new httplib::ThreadPool(static_cast<std::size_t>(n)); };
    http.set_payload_max_length(options.max_body_bytes);
    // An idle keep-alive connection holds an HTTP thread, and stop() waits for it: 2 s, not 5.
    http.set_keep_alive_timeout(2);
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (options.api_key.empty() || req.path.rfind("/v1/", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
      if (req.get_header_value("Authorization") == "Bearer " + options.api_key)
        return httplib::Server::HandlerResponse::Unhandled;
      refuse(res, ApiError(401, "missing or wrong API key (send 'Authorization: Bearer <key>')", "",
                           "invalid_request_error", "invalid_api_key"));
      return httplib::Server::HandlerResponse::Handled;
    });
    // Errors httplib answers itself (413 body too large, 404, 400 unparsable HTTP) get an OpenAI
    // error object too; ours already have a body.
    http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                       httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      std::string what = res.status == 413   ? "the request body is larger than " +
                                                 std::to_string(options.max_body_bytes) + " bytes (--max-body-bytes)"
                         : res.status == 404 ? "no route " + req.method + " " + req.path
                                             : "HTTP error " + std::to_string(res.status);
      metrics.refused(res.status);
      send_error(res, ApiError(res.status, what));
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.Post("/v1/completions", [this](const httplib::Request& q, httplib::Response& r) { completion(q, r, false); });
    http.Post("/v1/chat/completions",
              [this](const httplib::Request& q, httplib::Response& r) { completion(q, r, true); });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      json m = {{"id", options.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "llm-engine"},
                {"max_model_len", model.config().context_length}};
      res.set_content(dump({{"object", "list"}, {"data", json::array({m})}}), "application/json");
    });
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      const std::string failure = engine.failure();
      res.status = failure.empty() ? 200 : 503;
      res.set_content(dump({{"status", failure.empty() ? "ok" : failure}}), "application/json");
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics.prometheus(engine.snapshot()), "text/plain; version=0.0.4");
    });
    http.Get("/v1/engine/state", [this](const httplib::Request&, httplib::Response& res) {
      const EngineSnapshot s = engine.snapshot();
      res.set_content(dump({{"running", s.running},
                            {"waiting", s.waiting},
                            {"used_blocks", s.used_blocks},
                            {"num_blocks", s.num_blocks},
                            {"steps", s.steps},
                            {"running_ids", s.running_ids},
                            {"block_owner", s.block_owner},
                            {"block_shared", s.block_shared}}),
                      "application/json");
    });
    http.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(kLivePage, "text/html; charset=utf-8");
    });
  }
};

OpenAiServer::OpenAiServer(const Model& model, OnlineEngine& engine, StreamWriter& writer, ServerMetrics& metrics,
                           ServerOptions options, int default_max_tokens, int kv_block_size, int kv_blocks)
    : impl_(std::make_unique<Impl>(model, engine, writer, metrics, std::move(options), default_max_tokens, kv_block_size,
                                   kv_blocks)) {
  impl_->routes();
}

OpenAiServer::~OpenAiServer() = default;

int OpenAiServer::bind() {
  const ServerOptions& o = impl_->options;
  const int port = o.port == 0 ? impl_->http.bind_to_any_port(o.host) : (impl_->http.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port <= 0)
    throw Error("--host " + o.host + " --port " + std::to_string(o.port) + ": cannot listen there (in use, or not an address of this machine)");
  return port;
}

void OpenAiServer::serve() { impl_->http.listen_after_bind(); }

void OpenAiServer::stop() { impl_->http.stop(); }

}  // namespace llm::stage08
