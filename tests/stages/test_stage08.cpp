// Stage 08's online loop and API pieces, without HTTP (tests/serving/ drives the server itself):
//   [online]  requests submitted from three threads at staggered times, through a pool small
//             enough to preempt, give exactly the offline run()'s tokens; Scheduler::check()
//             after every step; no block held afterwards
//   [cancel]  cancelling running and waiting requests: they end with error "cancelled" (a
//             waiting one without a token), the others keep their offline tokens, the pool is free
//   [writer]  the stream writer pumps a stream when added and when woken (its tick set far away,
//             so a tick cannot pass for either), keeps pumping it while it asks, never again once
//             it says it is done; the engine wakes it (on_output) after steps that gave tokens
//   [api]     the request checks name the field; stop strings end the text before them, across
//             token boundaries, never splitting a UTF-8 character; the SSE framing; the
//             admission rule
#include <catch2/catch.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <thread>

#include "common/model_weights.h"
#include "stages/08_serving/completion_text.h"
#include "stages/08_serving/online_engine.h"
#include "stages/08_serving/openai_api.h"
#include "stages/08_serving/stream_writer.h"
#include "tests/helpers/random_model.h"
#include "tests/helpers/random_requests.h"

using namespace llm;
using namespace std::chrono_literals;

namespace {

stage03::ContinuousBatchConfig small_pool() {
  stage03::ContinuousBatchConfig c;
  c.scheduler.max_running = 4;
  c.scheduler.token_budget = 32;
  c.block_size = 4;
  c.num_blocks = 64;  // 256 tokens: four long requests do not fit at once, so some are preempted
  return c;
}

/// Waits (bounded) for a stream's result, collecting its tokens.
RequestResult wait_result(stage08::RequestStream& s, std::vector<int>& tokens) {
  for (int i = 0; i < 600; ++i) {
    if (auto r = s.take(tokens, 100ms)) return *r;
  }
  FAIL("no result within 60 s");
  return {};
}

void wait_idle(const stage08::OnlineEngine& online) {
  for (int i = 0; i < 400; ++i) {
    const stage08::EngineSnapshot s = online.snapshot();
    if (s.running == 0 && s.waiting == 0 && s.used_blocks == 0) return;
    std::this_thread::sleep_for(5ms);
  }
  const stage08::EngineSnapshot s = online.snapshot();
  FAIL("not idle: running " << s.running << ", waiting " << s.waiting << ", blocks " << s.used_blocks);
}

}  // namespace

TEST_CASE("online submissions give the offline tokens", "[online]") {
  const Model model = load_model(test::repo_path("datasets/models/tiny-target.gguf"));
  const ModelConfig& c = model.config();
  const std::vector<Request> requests = test::random_requests(c.vocab_size, c.context_length, 8, 24);
  stage03::ContinuousBatchEngine offline(model.weights, model.tokenizer->stop_ids(), small_pool());
  const std::vector<RequestResult> want = offline.run(requests, nullptr);

  stage03::ContinuousBatchEngine engine(model.weights, model.tokenizer->stop_ids(), small_pool());
  std::atomic<long> steps{0};
  engine.set_step_hook([&](const stage03::Scheduler& s) {
    s.check();
    ++steps;
  });
  stage08::ServerMetrics metrics;
  std::vector<std::shared_ptr<stage08::RequestStream>> streams(requests.size());
  for (auto& s : streams) s = std::make_shared<stage08::RequestStream>();
  {
    stage08::OnlineEngine online(engine, {256, 7}, metrics);  // a fresh run every 7 requests, too
    // Catch2's assertions are not thread-safe, and an exception must not escape a thread (a student
    // tree's NotImplemented from the admission rule): each client keeps what happened, checked here.
    std::vector<std::thread> clients;
    std::vector<std::exception_ptr> thrown(3);
    std::vector<int> refused(requests.size(), 0);
    for (int t = 0; t < 3; ++t) {
      clients.emplace_back([&, t] {
        try {
          for (std::size_t i = static_cast<std::size_t>(t); i < requests.size(); i += 3) {
            std::string why;
            refused[i] = online.submit(requests[i], streams[i], why) == 0;
            std::this_thread::sleep_for(std::chrono::milliseconds(2 * (i % 5)));
          }
        } catch (...) {
          thrown[static_cast<std::size_t>(t)] = std::current_exception();
        }
      });
    }
    for (auto& t : clients) t.join();
    for (const auto& e : thrown)
      if (e) std::rethrow_exception(e);
    REQUIRE(std::count(refused.begin(), refused.end(), 1) == 0);
    for (std::size_t i = 0; i < requests.size(); ++i) {
      std::vector<int> tokens;
      const RequestResult got = wait_result(*streams[i], tokens);
      INFO("request " << i);
      CHECK(got.error.empty());
      CHECK(got.rejected == want[i].rejected);
      CHECK(got.tokens == want[i].tokens);
      CHECK(tokens == want[i].tokens);  // streamed as sampled, all of them, in order
    }
    wait_idle(online);
  }
  CHECK(engine.blocks_in_use_after_run() == 0);
  CHECK(steps > 0);
  CHECK(offline.stats().preemptions > 0);  // the pool was small enough to matter
}

TEST_CASE("cancelled requests leave at once and free their blocks", "[cancel]") {
  const Model model = load_model(test::repo_path("datasets/models/tiny-target.gguf"));
  auto config = small_pool();
  config.scheduler.max_running = 2;
  config.num_blocks = 0;
  std::vector<Request> requests;
  for (int i = 0; i < 6; ++i) {
    Request r;
    r.id = std::to_string(i);
    r.prompt = model.tokenizer->encode_prompt("Once upon a time " + std::to_string(i));
    r.max_new_tokens = 120;
    requests.push_back(std::move(r));
  }
  stage03::ContinuousBatchEngine offline(model.weights, model.tokenizer->stop_ids(), config);
  const std::vector<RequestResult> want = offline.run(requests, nullptr);
  stage03::ContinuousBatchEngine engine(model.weights, model.tokenizer->stop_ids(), config);
  stage08::ServerMetrics metrics;
  stage08::OnlineEngine online(engine, {256, 10000}, metrics);
  std::vector<std::shared_ptr<stage08::RequestStream>> streams;
  std::vector<std::uint64_t> ids;
  for (const Request& r : requests) {
    streams.push_back(std::make_shared<stage08::RequestStream>());
    std::string why;
    ids.push_back(online.submit(r, streams.back(), why));
  }
  // 0 and 1 run first (max_running 2): cancel 0 once it has a token; cancel 4, still waiting.
  std::vector<int> first;
  for (int i = 0; i < 600 && first.empty(); ++i) streams[0]->take(first, 100ms);
  REQUIRE(!first.empty());
  online.cancel(ids[0]);
  online.cancel(ids[4]);
  std::vector<std::vector<int>> tokens(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const RequestResult got = wait_result(*streams[i], tokens[i]);
    INFO("request " << i);
    if (i == 0 || i == 4) {
      CHECK(got.error == "cancelled");
      CHECK(got.tokens.size() < want[i].tokens.size());
      if (i == 4) CHECK(got.tokens.empty());
    } else {
      CHECK(got.error.empty());
      CHECK(got.tokens == want[i].tokens);
    }
  }
  wait_idle(online);
  online.cancel(ids[1]);  // over already: nothing happens
  wait_idle(online);
}

namespace {
/// Counts its pumps; asks to be pumped again until `rounds` pumps.
struct CountingStream : stage08::StreamWriter::Stream {
  explicit CountingStream(int r) : rounds(r) {}
  bool pump() override { return ++pumps < rounds; }
  const int rounds;
  std::atomic<int> pumps{0};
};

/// Waits (at most 5 s) until `done()`; returns whether it came.
template <class F>
bool eventually(F done) {
  for (int i = 0; i < 500 && !done(); ++i) std::this_thread::sleep_for(10ms);
  return done();
}
}  // namespace

TEST_CASE("the stream writer pumps when woken, and drops a stream that is done", "[writer]") {
  stage08::StreamWriter writer(std::chrono::hours(1));  // no tick during the test: only add/wake pump
  auto stays = std::make_shared<CountingStream>(1000);
  auto once = std::make_shared<CountingStream>(1);
  writer.add(stays);
  writer.add(once);
  REQUIRE(eventually([&] { return stays->pumps >= 1 && once->pumps >= 1; }));
  for (int round = 0; round < 3; ++round) {
    const int before = stays->pumps;
    writer.wake();
    REQUIRE(eventually([&] { return stays->pumps > before; }));
  }
  CHECK(once->pumps == 1);  // it said it was done at its first pump: never pumped again
  std::this_thread::sleep_for(50ms);
  const int settled = stays->pumps;
  std::this_thread::sleep_for(100ms);
  CHECK(stays->pumps == settled);  // without a wake-up (and no tick) nothing is pumped

  // The engine thread wakes it: on_output comes after steps that sampled tokens.
  const Model model = load_model(test::repo_path("datasets/models/tiny-target.gguf"));
  stage03::ContinuousBatchEngine engine(model.weights, model.tokenizer->stop_ids(), small_pool());
  stage08::ServerMetrics metrics;
  std::atomic<int> outputs{0};
  auto stream = std::make_shared<stage08::RequestStream>();
  {
    stage08::OnlineEngine online(engine, {256, 10000}, metrics, [&] {
      ++outputs;
      writer.wake();
    });
    Request r;
    r.prompt = {1, 2, 3, 4};
    r.max_new_tokens = 6;
    std::string why;
    const int before = stays->pumps;
    REQUIRE(online.submit(r, stream, why) != 0);
    std::vector<int> tokens;
    const RequestResult got = wait_result(*stream, tokens);
    CHECK(got.error.empty());
    CHECK(tokens.size() == got.tokens.size());
    CHECK(eventually([&] { return outputs >= 1 && stays->pumps > before; }));
    wait_idle(online);
  }
  CHECK(outputs <= 6 + 1);  // at most one per step (6 tokens: 6 steps), plus the poll after the last
}

TEST_CASE("request checks, stop strings, SSE framing, admission", "[api]") {
  using stage08::ApiError;
  auto param_of = [](const std::string& body, bool chat = false) {
    try {
      stage08::parse_completion(body, chat, "m");
    } catch (const ApiError& e) {
      CHECK(e.status == 400);
      return e.param.empty() ? std::string("(none)") : e.param;
    }
    return std::string("(accepted)");
  };
  CHECK(param_of("{") == "(none)");
  CHECK(param_of(R"({"model":"m","prompt":"x"})") == "(accepted)");
  CHECK(param_of(R"({"model":"n","prompt":"x"})") == "model");
  CHECK(param_of(R"({"model":"m","prompt":"x","max_tokens":0})") == "max_tokens");
  CHECK(param_of(R"({"model":"m","prompt":"x","max_tokens":1e3})") == "max_tokens");
  CHECK(param_of(R"({"model":"m","prompt":"x","temperature":"1"})") == "temperature");
  CHECK(param_of(R"({"model":"m","prompt":"x","top_p":0})") == "top_p");
  CHECK(param_of(R"({"model":"m","prompt":"x","seed":18446744073709551615})") == "seed");
  CHECK(param_of(R"({"model":"m","prompt":"x","n":3})") == "n");
  CHECK(param_of(R"({"model":"m","prompt":"x","stop":[1]})") == "stop[0]");
  CHECK(param_of(R"({"model":"m","messages":[{"role":"user"}]})", true) == "messages[0].content");
  CHECK_THROWS_AS(stage08::check_fits(10, 7, 16), ApiError);
  CHECK_NOTHROW(stage08::check_fits(10, 6, 16));

  const Model model = load_model(test::repo_path("datasets/models/tiny-target.gguf"));
  const Tokenizer& tok = *model.tokenizer;
  const std::vector<int> prompt = tok.encode_prompt("Once upon a time");
  const std::vector<int> ids = tok.encode_prompt(" there was a little girl named Lily");
  const std::size_t from = !ids.empty() && ids[0] == tok.bos_id() ? 1 : 0;
  std::string whole;
  {
    stage08::CompletionText t(tok, prompt.back(), {});
    for (std::size_t i = from; i < ids.size(); ++i) whole += t.push(ids[i]);
    whole += t.finish();
  }
  REQUIRE(whole.find("little") != std::string::npos);
  for (const std::string stop : {"little", "e g", "Lily", "nowhere"}) {
    stage08::CompletionText t(tok, prompt.back(), {stop, "zzzz"});
    std::string got;
    for (std::size_t i = from; i < ids.size(); ++i) got += t.push(ids[i]);
    got += t.finish();
    const std::size_t at = whole.find(stop);
    INFO("stop " << stop);
    CHECK(got == whole.substr(0, at));
    CHECK(t.stop_matched() == (at != std::string::npos));
  }
  CHECK(stage08::sse_event("{}") == "data: {}\n\n");
  CHECK(stage08::sse_event("a\nb") == "data: a\ndata: b\n\n");
  // A stream's middle chunks spliced from a template equal the JSON object's dump, byte for byte.
  for (bool chat : {false, true}) {
    stage08::CompletionParams p;
    p.chat = chat;
    p.model = "tiny \"model\"";
    const stage08::StreamChunkText middle(p, "cmpl-7", 1700000000);
    for (const std::string text : {"a", " word", "quote\"s", "new\nline", "tab\t", "back\\slash", "\xC3\xBC",
                                   "\xF0\x9F\x98\x80", "\x01piece\x01", "</script>"}) {
      INFO((chat ? "chat: " : "completion: ") << text);
      CHECK(middle(text) ==
            stage08::stream_chunk(p, "cmpl-7", 1700000000, text, "", false)
                .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
  }
  CHECK(stage08::sse_event("[DONE]") == "data: [DONE]\n\n");
  CHECK(stage08::admits(0, 1));
  CHECK(!stage08::admits(1, 1));
  CHECK(stage08::admits(255, 256));
}
