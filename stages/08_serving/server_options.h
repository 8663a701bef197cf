// server_options.h: the server's own flags. They are taken out of argv first; what is left is
// the engine's command line, parsed by common/cli like every stage's (--model, --batch,
// --block-size, --kv-blocks, --max-queue, --backend, ...).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace llm::stage08 {

struct ServerOptions {
  std::string host = "127.0.0.1";  ///< --host: loopback unless asked
  int port = 8000;                 ///< --port: 0 = any free port (printed when listening)
  std::string api_key;             ///< --api-key: when set, requests need "Authorization: Bearer KEY"
  std::string model_name;          ///< --served-model-name: the name /v1/models lists (default: the file's stem)
  /// --engine: 03 (stage 03's fp32 CPU engine), 04 (stage 04's, --backend), 05 (stage 05's:
  /// --weights, --kv-cache, --matmul) or 06 (stage 06's: --speculate, --spec-k, --draft-model,
  /// --draft-layers). Empty (not given): engine_for(args) picks it from the flags given.
  std::string engine;
  std::size_t max_body_bytes = std::size_t{1} << 20;  ///< --max-body-bytes: larger bodies get 413
  int http_threads = 64;  ///< --http-threads: connections served at once (each stream holds one)
};

/// Takes the server's flags out of `args` (args[0] is the program) and checks them; throws
/// llm::Error naming the flag and the value. Leaves the other flags in `args`, in order.
ServerOptions take_server_options(std::vector<std::string>& args);

/// The engine the other flags ask for when --engine is not given: 05 when one of stage 05's
/// flags is among `args`, 06 for one of stage 06's, else 03. Throws llm::Error naming both flags
/// when both stages' flags are given (no engine has both).
std::string engine_for(const std::vector<std::string>& args);

/// The --help text of the server's own flags.
std::string server_options_help();

}  // namespace llm::stage08
