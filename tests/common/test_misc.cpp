// The small parts of common/: workloads, the chat template, metrics, UTF-8 and character classes.
#include <catch2/catch.hpp>
#include <fstream>

#include "common/chat_template.h"
#include "common/error.h"
#include "common/gguf.h"
#include "common/metrics.h"
#include "common/tokenizer.h"
#include "common/unicode.h"
#include "common/workload.h"
#include "tests/helpers/random_model.h"

using namespace llm;
using Catch::Matchers::Contains;

TEST_CASE("workload files: good lines are read, bad lines name file and line", "[misc]") {
  const std::string path = test::temp_path("w.jsonl");
  auto write = [&](const std::string& text) { std::ofstream(path) << text; };
  write(
      "{\"prompt\": \"a\", \"max_new_tokens\": 3}\n\n{\"id\": \"x\", \"prompt\": \"b\", \"max_new_tokens\": 1, "
      "\"arrival_s\": 0.5}\n");
  const auto items = read_workload(path);
  REQUIRE(items.size() == 2);
  CHECK(items[0].id == "r0");
  CHECK(items[1].id == "x");
  CHECK(items[1].arrival_s == 0.5);
  write("{\"prompt\": \"a\", \"max_new_tokens\": 3}\n{\"prompt\": \"a\"}\n");
  CHECK_THROWS_WITH(read_workload(path), Contains(path + ":2:") && Contains("max_new_tokens"));
  write("not json\n");
  CHECK_THROWS_WITH(read_workload(path), Contains(path + ":1:") && Contains("not valid JSON"));
  write("{\"prompt\": \"a\", \"max_new_tokens\": 0}\n");
  CHECK_THROWS_WITH(read_workload(path), Contains("is 0"));
  write("\n");
  CHECK_THROWS_WITH(read_workload(path), Contains("no requests"));
  std::remove(path.c_str());
}

TEST_CASE("ChatML is rendered with SmolLM2's default system message", "[misc]") {
  GGUFFile f(test::repo_path("datasets/tokenizers/smollm2_tokenizer.gguf"));
  auto tok = load_gguf_tokenizer(f);
  const std::string text = apply_chat_template(*tok, "smollm2", "What is 2+2?");
  CHECK(text ==
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
  CHECK(apply_chat_template(*tok, "m", "hi", "Be brief.").rfind("<|im_start|>system\nBe brief.<|im_end|>\n", 0) == 0);

  const std::string path = test::temp_path("nochat.gguf");
  test::write_gguf_model(test::make_random_weights({}), path);
  GGUFFile g(path);
  auto plain = load_gguf_tokenizer(g);
  CHECK_THROWS_WITH(apply_chat_template(*plain, path, "hi"), Contains(path) && Contains("no chat template"));
  std::remove(path.c_str());
}

TEST_CASE("metrics from token timestamps", "[misc]") {
  CHECK(percentile({1, 2, 3, 4, 5}, 50) == 3.0);
  CHECK(percentile({1, 2}, 90) == Approx(1.9));
  CHECK(percentile({}, 90) == 0.0);
  RequestResult r;
  r.id = "a";
  r.arrival_s = 1.0;
  r.tokens = {5, 6, 7};
  r.token_time_s = {1.5, 2.0, 3.5};
  const RunMetrics m = compute_metrics({r}, 4.0);
  CHECK(m.requests[0].ttft_s == Approx(0.5));
  CHECK(m.requests[0].tpot_s == Approx(1.0));
  CHECK(m.tokens_per_s == Approx(0.75));
  CHECK(metrics_to_json(m)["generated_tokens"] == 3);
  CHECK_THAT(format_metrics(m), Contains("TTFT"));
}

TEST_CASE("UTF-8 decoding and character classes", "[misc]") {
  const auto chars = unicode::decode_utf8("a\xC3\xA9\xE4\xBD\xA0\xF0\x9F\x99\x82\xFF");
  REQUIRE(chars.size() == 5);
  CHECK(chars[1].cp == 0xE9);
  CHECK(chars[2].cp == 0x4F60);
  CHECK(chars[3].cp == 0x1F642);
  CHECK(chars[4].cp == 0xFFFD);
  CHECK(unicode::encode_utf8(0x1F642) == "\xF0\x9F\x99\x82");
  CHECK(unicode::complete_utf8_prefix("ab\xF0\x9F") == 2);
  CHECK(unicode::complete_utf8_prefix("ab\xC3\xA9") == 4);
  CHECK(unicode::is_letter(U'é'));
  CHECK(unicode::is_letter(0x4F60));
  CHECK_FALSE(unicode::is_letter(U'1'));
  CHECK(unicode::is_number(U'٣'));  // Arabic-Indic three
  CHECK(unicode::is_whitespace(0x3000));
  CHECK_FALSE(unicode::is_whitespace(U'x'));
}
