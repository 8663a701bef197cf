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
  std::string engine = "03";       ///< --engine: 03 (stage 03's fp32 CPU engine) or 04 (stage 04's, --backend)
  std::size_t max_body_bytes = std::size_t{1} << 20;  ///< --max-body-bytes: larger bodies get 413
  int http_threads = 64;  ///< --http-threads: connections served at once (each stream holds one)
};

/// Takes the server's flags out of `args` (args[0] is the program) and checks them; throws
/// llm::Error naming the flag and the value. Leaves the other flags in `args`, in order.
ServerOptions take_server_options(std::vector<std::string>& args);

/// The --help text of the server's own flags.
std::string server_options_help();

}  // namespace llm::stage08
