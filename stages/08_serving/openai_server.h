// openai_server.h: the HTTP side of stage 08. cpp-httplib serves the routes; each request is
// checked (openai_api.h), tokenized, submitted to the OnlineEngine, and answered from its
// RequestStream: as one JSON object, or as server-sent events while tokens are sampled (written
// by the StreamWriter's thread, once per engine step for every stream).
//
//   POST /v1/completions, POST /v1/chat/completions   (stream: true -> text/event-stream)
//   GET  /v1/models, /health, /metrics (Prometheus text), /v1/engine/state (JSON, the live page)
//   GET  /                                            the live page (static, works offline)
#pragma once

#include <memory>
#include <string>

#include "common/model_weights.h"
#include "online_engine.h"
#include "server_metrics.h"
#include "server_options.h"
#include "stream_writer.h"

namespace httplib {
class Server;
}

namespace llm::stage08 {

class OpenAiServer {
 public:
  /// `model`, `engine` and `writer` must outlive the server; `engine` should wake `writer` after
  /// each step (its on_output). `default_max_tokens`: max_tokens when a request leaves it out
  /// (then lowered to what fits the context).
  OpenAiServer(const Model& model, OnlineEngine& engine, StreamWriter& writer, ServerMetrics& metrics,
               ServerOptions options, int default_max_tokens, int kv_block_size, int kv_blocks);
  ~OpenAiServer();
  /// Binds (port 0: any free port) and returns the port; throws llm::Error if it cannot.
  int bind();
  /// Serves until stop() (from another thread or a signal handler's thread).
  void serve();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace llm::stage08
