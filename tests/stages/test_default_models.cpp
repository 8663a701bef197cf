// The committed default models (datasets/models/tiny-{target,draft}.gguf, trained by
// scripts/train_tiny.py) against the training script's own PyTorch model:
//   [default-perplexity]  the engine's tokenizer gives the script's token ids on held-out text, and
//                         stage 00's perplexity over those windows is the script's within 1%
//   [workloads]           every datasets/workloads/*.jsonl parses and fits the model's context
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "common/model_weights.h"
#include "common/workload.h"
#include "naive_engine.h"
#include "kernels/harness/compare.h"
#include "tests/helpers/random_model.h"

using namespace llm;

namespace {
const char* const kModels[] = {"tiny-target", "tiny-draft"};

std::vector<std::string> read_lines(const std::string& path, std::size_t n) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::vector<std::string> lines;
  std::string line;
  while (lines.size() < n && std::getline(in, line))
    if (!line.empty()) lines.push_back(line);
  return lines;
}
}  // namespace

// The default models' golden logits (from the training script's PyTorch forward) are checked
// with the other golden files by the [golden] case of tests/stages/test_stage00.cpp.

TEST_CASE("tokenizer and stage 00 perplexity on held-out text match the training script",
          "[default-perplexity]") {
  std::ifstream in(test::repo_path("datasets/eval/ppl_reference.json"));
  REQUIRE(in.good());
  const auto ref = nlohmann::json::parse(in);
  const int window = ref["window"].get<int>();
  for (const std::string name : kModels) {
    Model m = load_model(test::repo_path("datasets/models/" + name + ".gguf"));
    const int vocab = m.config().vocab_size;
    double nll = 0.0;
    long count = 0;
    for (const auto& file : ref["files"]) {
      // Tokenize as the script does: <s> + text + </s> per document (one per line).
      const auto want = file["tokens"].get<std::vector<int>>();
      std::vector<int> got;
      for (const auto& doc : read_lines(test::repo_path(file["path"].get<std::string>()), file["docs"].get<std::size_t>())) {
        const auto ids = m.tokenizer->encode_prompt(doc);
        got.insert(got.end(), ids.begin(), ids.end());
        got.push_back(m.tokenizer->eos_id());
      }
      REQUIRE(got.size() >= want.size());
      got.resize(want.size());
      INFO(name << ": " << file["path"].get<std::string>());
      std::size_t first_diff = 0;
      while (first_diff < got.size() && got[first_diff] == want[first_diff]) ++first_diff;
      INFO("first differing token at " << first_diff);
      REQUIRE(got == want);
      for (std::size_t w = 0; w + static_cast<std::size_t>(window) <= want.size(); w += static_cast<std::size_t>(window)) {
        const std::vector<int> tokens(want.begin() + static_cast<long>(w), want.begin() + static_cast<long>(w) + window);
        const auto logits = stage00::forward(m.weights, tokens, true);
        for (int t = 0; t + 1 < window; ++t) {
          const float* row = &logits[static_cast<std::size_t>(t) * static_cast<std::size_t>(vocab)];
          double mx = row[0];
          for (int v = 1; v < vocab; ++v) mx = std::max(mx, static_cast<double>(row[v]));
          double sum = 0.0;
          for (int v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - mx);
          nll += mx + std::log(sum) - row[tokens[static_cast<std::size_t>(t) + 1]];
          ++count;
        }
      }
    }
    const auto& want = ref["models"][name + ".gguf"];
    CHECK(count == want["predicted_tokens"].get<long>());
    const double ppl = std::exp(nll / static_cast<double>(count)), want_ppl = want["ppl"].get<double>();
    INFO(name << ": stage 00 perplexity " << ppl << ", training script " << want_ppl);
    CHECK(std::fabs(ppl - want_ppl) / want_ppl < 0.01);
  }
}

TEST_CASE("the committed workloads parse and fit the default model's context", "[workloads]") {
  Model m = load_model(test::repo_path("datasets/models/tiny-target.gguf"));
  const int ctx = m.config().context_length;
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(test::repo_path("datasets/workloads"))) {
    if (entry.path().extension() != ".jsonl") continue;
    ++files;
    const auto items = read_workload(entry.path().string());
    INFO(entry.path().filename().string());
    REQUIRE(!items.empty());
    std::set<std::string> ids;
    double last_arrival = 0.0;
    for (const auto& it : items) {
      INFO("request " << it.id);
      CHECK(ids.insert(it.id).second);
      CHECK(it.arrival_s >= last_arrival);
      last_arrival = it.arrival_s;
      const auto prompt = m.tokenizer->encode_prompt(it.prompt);
      CHECK(static_cast<int>(prompt.size()) + it.max_new_tokens <= ctx);
    }
  }
  CHECK(files >= 3);
}
