// Stage 08: the engine as a service, an OpenAI-compatible HTTP server. See README.md here.
//
//   stage08_serving --model datasets/models/tiny-target.gguf [--port 8000] [--api-key KEY] [engine flags]
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <pthread.h>
#include <thread>

#include "common/cli.h"
#include "common/run_main.h"
#include "common/timer.h"
#include "online_engine.h"
#include "openai_api.h"
#include "openai_server.h"
#include "server_options.h"
#include "stages/04_cuda/gpu_engine.h"
#include "stages/05_quantization/quant_engine.h"
#include "stages/06_speculative_decoding/speculative_engine.h"

namespace {

using namespace llm;

/// The engine served: the one Engine that owns everything (weights in their storage, a draft
/// model), and stage 03's engine inside it, whose loop runs online.
struct ServedEngine {
  std::unique_ptr<Engine> owner;
  stage03::ContinuousBatchEngine* batching = nullptr;
};

ServedEngine make_engine(const Model& model, const CliOptions& o, const std::string& engine) {
  ServedEngine out;
  if (engine == "03") {
    auto e = std::make_unique<stage03::ContinuousBatchEngine>(model.weights, model.tokenizer->stop_ids(),
                                                              stage03::continuous_batch_config(o));
    out.batching = e.get();
    out.owner = std::move(e);
  } else if (engine == "04") {
    stage04::GpuEngine built = stage04::make_gpu_engine(model.weights, model.tokenizer->stop_ids(), stage04::gpu_engine_config(o));
    std::cerr << "stage 04 backend: " << built.backend << (built.note.empty() ? "" : " (" + built.note + ")") << "\n";
    out.batching = built.engine.get();
    out.owner = std::move(built.engine);
  } else if (engine == "05") {
    stage05::BuiltQuantEngine built = stage05::make_quant_engine(model, o);
    std::cerr << "stage 05 backend: " << built.backend << " (" << built.note << "); weights "
              << built.engine->stats().weight_storage << "\n";
    out.batching = &built.engine->inner();
    out.owner = std::move(built.engine);
  } else {
    auto e = stage06::make_speculative_engine(model, o);
    out.batching = &e->batching();
    out.owner = std::move(e);
  }
  return out;
}

int serve(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  const stage08::ServerOptions so_flags = stage08::take_server_options(args);
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") std::cout << stage08::server_options_help() << "\n";
  }
  // Prompts come over HTTP: the shared parser, which wants one, gets a placeholder.
  for (const std::string& a : args) {
    if (a == "--prompt" || a.rfind("--prompt=", 0) == 0 || a == "--workload" || a.rfind("--workload=", 0) == 0)
      throw Error(a.substr(0, a.find('=')) + ": the server takes its prompts over HTTP (see README.md)");
  }
  args.insert(args.end(), {"--prompt", "(over HTTP)"});
  std::vector<char*> rest;
  for (std::string& a : args) rest.push_back(a.data());
  // The engine's flags are the served stage's own, parsed by the same parser its executable uses.
  const std::string engine_stage = so_flags.engine.empty() ? stage08::engine_for(args) : so_flags.engine;
  const auto parsed = parse_cli(static_cast<int>(rest.size()), rest.data(), "stage08_serving",
                                "08_serving: the engine as an OpenAI-compatible HTTP service", 16, true, true,
                                engine_stage == "05", engine_stage == "06");
  if (!parsed) return 0;  // --help
  const CliOptions& o = *parsed;
  // Stage 03's and stage 06's engines have no CUDA backend: the parser takes --backend for every
  // engine, and a GPU asked for would otherwise be ignored without a word.
  if (o.backend == "cuda" && (engine_stage == "03" || engine_stage == "06"))
    throw Error("--backend cuda: --engine " + engine_stage + " runs on the CPU; the engines with a CUDA backend are 04 and 05");
  stage08::ServerOptions so = so_flags;
  if (so.model_name.empty()) so.model_name = std::filesystem::path(o.model).stem().string();

  // Block SIGINT/SIGTERM in every thread; one thread waits for them and stops the server, so
  // Ctrl-C ends the streams, cancels the requests and returns through the destructors.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Timer load_timer;
  const Model model = load_model(o.model, o.tokenizer);
  std::fprintf(stderr, "[08_serving] loaded %s (%s, %s) in %.2f s\n", o.model.c_str(), model.format.c_str(),
               model.config().summary().c_str(), load_timer.seconds());
  ServedEngine served = make_engine(model, o, engine_stage);
  stage03::ContinuousBatchEngine* engine = served.batching;
  // The exercises run here once, so a student tree with one blanked stops at once (exit 3).
  if (stage08::sse_event("a\nb") != "data: a\ndata: b\n\n") throw Error("sse_event: wrong framing");
  if (!stage08::admits(0, 1) || stage08::admits(1, 1)) throw Error("admits: wrong rule");

  stage08::ServerMetrics metrics;
  // Declared in this order, destroyed in the reverse: the server (its connections) first, then the
  // engine thread, which wakes the writer after each step, then the writer.
  stage08::StreamWriter writer;
  stage08::OnlineEngine online(*engine, stage08::OnlineConfig{o.max_queue, 10000}, metrics, [&writer] { writer.wake(); });
  stage08::OpenAiServer server(model, online, writer, metrics, so, o.max_new_tokens, o.block_size,
                               engine->num_blocks());
  online.cancel(0);  // no such request: a no-op, but it runs the cancel-request exercise
  const int port = server.bind();
  std::printf("stage08_serving: listening on http://%s:%d (model '%s', %d KV blocks of %d tokens)\n", so.host.c_str(),
              port, so.model_name.c_str(), engine->num_blocks(), o.block_size);
  std::fflush(stdout);
  std::thread waiter([&server, signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    std::fprintf(stderr, "stage08_serving: signal %d, stopping\n", sig);
    server.stop();
  });
  server.serve();
  // serve() returns once stop() has closed the socket, maybe before stop() itself returns: wake
  // the waiter if it still waits (serve() ended some other way) and join it before `server` goes.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return llm::run_main([&] { return serve(argc, argv); });
}
