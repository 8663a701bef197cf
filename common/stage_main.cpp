#include "common/stage_main.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <iostream>
#include <new>

#include "common/chat_template.h"
#include "common/error.h"
#include "common/metrics.h"
#include "common/run_main.h"
#include "common/timer.h"
#include "common/workload.h"

namespace llm {

namespace {

Request make_request(const Model& model, const CliOptions& o, const std::string& id, const std::string& text,
                     int max_new, bool engine_rejects) {
  const std::string prompt = o.chat ? apply_chat_template(*model.tokenizer, model.path, text, o.system_prompt) : text;
  Request r;
  r.id = id;
  const int ctx = model.config().context_length;
  // Tokenizing stops as soon as the prompt is known not to fit (ctx ids), so a huge prompt costs
  // little; a prompt that does not fit then holds ctx ids, which the checks below refuse.
  r.prompt = model.tokenizer->encode_prompt(prompt, static_cast<std::size_t>(std::max(ctx, 1) - 1));
  if (r.prompt.empty()) throw Error("request " + id + ": the prompt encodes to no tokens");
  r.sampling = {o.temperature, o.top_k, o.top_p, o.seed};
  if (engine_rejects && static_cast<int>(r.prompt.size()) >= ctx) {
    r.max_new_tokens = max_new;  // the engine refuses it with the reason; the other requests run
    return r;
  }
  if (static_cast<int>(r.prompt.size()) >= ctx) {
    throw Error("request " + id + ": the prompt (" + std::to_string(prompt.size()) + " bytes) is at least " +
                std::to_string(r.prompt.size()) + " tokens but the model's context is " + std::to_string(ctx) + " (" +
                model.path + "): shorten the prompt");
  }
  r.max_new_tokens = max_new;
  // Compared as room left, not as a sum: prompt + max_new can exceed INT_MAX.
  if (max_new > ctx - static_cast<int>(r.prompt.size())) {
    r.max_new_tokens = ctx - static_cast<int>(r.prompt.size());
    std::fprintf(stderr, "note: request %s: max_new_tokens %d lowered to %d to stay within the context of %d tokens\n",
                 id.c_str(), max_new, r.max_new_tokens, ctx);
  }
  return r;
}

}  // namespace

std::vector<Request> build_requests(const Model& model, const CliOptions& o, const std::vector<WorkloadItem>& items,
                                    bool engine_rejects) {
  std::vector<Request> requests;
  for (const auto& item : items) {
    requests.push_back(make_request(model, o, item.id, item.prompt, item.max_new_tokens, engine_rejects));
    requests.back().arrival_s = item.arrival_s;
  }
  return requests;
}

std::vector<Request> build_requests(const Model& model, const CliOptions& o, bool engine_rejects) {
  if (!o.workload.empty()) return build_requests(model, o, read_workload(o.workload), engine_rejects);
  return {make_request(model, o, "prompt", o.prompt, o.max_new_tokens, false)};
}

namespace {

int run(int argc, char** argv, const StageInfo& stage, const EngineFactory& make_engine) {
  const auto parsed = parse_cli(argc, argv, "stage" + stage.name, stage.name + ": " + stage.description,
                                stage.default_batch, stage.paged_kv, stage.device_backend, stage.quantization,
                                stage.speculative);
  if (!parsed) return 0;  // --help
  const CliOptions& o = *parsed;

  Timer load_timer;
  Model model = load_model(o.model, o.tokenizer);
  std::fprintf(stderr, "[%s] loaded %s (%s, %s) in %.2f s\n", stage.name.c_str(), o.model.c_str(), model.format.c_str(),
               model.config().summary().c_str(), load_timer.seconds());

  std::vector<Request> requests = build_requests(model, o, stage.paged_kv || stage.rejects_requests);

  if (stage.max_batch > 0 && o.batch > stage.max_batch) {
    throw Error("--batch " + std::to_string(o.batch) + ": stage " + stage.name.substr(0, 2) +
                " runs one request at a time (batching arrives in stage 02)");
  }
  auto engine = make_engine(model, o);
  const bool stream = requests.size() == 1 && !o.quiet && !o.json;
  TextDecoder decoder(*model.tokenizer, requests.front().prompt.back());
  if (stream) {
    std::cout << (o.chat ? o.prompt + "\n" : o.prompt) << std::flush;
  }
  // An error thrown while the text streams must not continue its line ("hierror: ..."): end it.
  struct EndStreamedLine {
    bool open;
    ~EndStreamedLine() {
      if (open && std::uncaught_exceptions() > 0) std::cout << std::endl;
    }
  } end_streamed_line{stream};
  Timer wall;
  const auto& stops = model.tokenizer->stop_ids();
  auto results = engine->run(requests, [&](std::size_t, int token) {
    if (stream && !is_stop(stops, token)) std::cout << decoder.push(token) << std::flush;
  });
  const double wall_s = wall.seconds();
  if (stream) std::cout << decoder.flush() << "\n";
  // A request's text, without the stop token that ended it.
  auto text_of = [&](const RequestResult& r) {
    std::vector<int> ids = r.tokens;
    if (r.stopped && !ids.empty()) ids.pop_back();
    return model.tokenizer->decode(ids);
  };
  if (!stream && !o.json && !o.quiet) {
    for (const auto& r : results) std::cout << "[" << r.id << "] " << text_of(r) << "\n";
  }
  // Refused (never ran) or failed (ended by an error, e.g. non-finite logits): in a batch the
  // others' results still stand; when nothing succeeded, the command failed.
  std::size_t refused = 0, failed = 0;
  for (const auto& r : results) {
    if (!r.rejected.empty()) ++refused;
    if (!r.error.empty()) ++failed;
    if (results.size() == 1) continue;
    if (!r.rejected.empty()) std::fprintf(stderr, "rejected: request %s: %s\n", r.id.c_str(), r.rejected.c_str());
    if (!r.error.empty()) std::fprintf(stderr, "failed: request %s: %s\n", r.id.c_str(), r.error.c_str());
  }
  if (refused + failed == results.size()) {
    if (results.size() > 1) throw Error("no request was served (see above)");
    const RequestResult& only = results[0];
    throw Error("request " + only.id + (only.rejected.empty() ? ": " + only.error : " rejected: " + only.rejected));
  }

  RunMetrics m = compute_metrics(results, wall_s);
  m.stage = stage.name;
  m.model = o.model;
  m.weight_bytes = stage.weight_storage_bytes ? stage.weight_storage_bytes(model.weights) : model.weights.bytes();
  m.weight_storage = stage.weight_storage;
  m.engine = engine->stats();
  if (!m.engine.weight_storage.empty()) {  // chosen at run time (stage 05's --weights)
    m.weight_storage = m.engine.weight_storage;
    m.weight_bytes = m.engine.weight_bytes;
  }
  if (o.json) {
    auto j = metrics_to_json(m);
    j["outputs"] = nlohmann::json::array();
    for (const auto& r : results) {
      j["outputs"].push_back({{"id", r.id},
                              {"prompt_tokens", r.prompt_tokens},
                              {"text", text_of(r)},
                              {"tokens", r.tokens},
                              {"token_time_s", r.token_time_s},
                              {"arrival_s", r.arrival_s},
                              {"rejected", r.rejected},
                              {"error", r.error}});
    }
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << "\n" << format_metrics(m);
  }
  return 0;
}

}  // namespace

int stage_main(int argc, char** argv, const StageInfo& stage, const EngineFactory& make_engine) {
  return run_main([&] { return run(argc, argv, stage, make_engine); });
}

}  // namespace llm
