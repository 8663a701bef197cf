// The small parts of common/: workloads, the chat template, metrics, UTF-8 and character classes.
#include <catch2/catch.hpp>
#include <climits>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "common/chat_template.h"
#include "common/checked.h"
#include "common/cli.h"
#include "common/error.h"
#include "common/gguf.h"
#include "common/metrics.h"
#include "common/sampler.h"
#include "common/tokenizer.h"
#include "common/unicode.h"
#include "common/workload.h"
#include "tests/helpers/random_model.h"

using namespace llm;
using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using Catch::Matchers::Equals;
using Catch::Matchers::StartsWith;

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

TEST_CASE("workload files: every field's range, types, duplicates, limits", "[misc]") {
  auto bad = [](const std::string& text) {
    try {
      (void)parse_workload(text, "w.jsonl");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  const std::string ok = R"({"prompt": "a", "max_new_tokens": 3)";
  // arrival_s: finite, 0 .. one day (1e9 would sleep for 31 years); 1e999 overflows nlohmann's parser.
  CHECK_THAT(bad(ok + R"(, "arrival_s": 1e9})"),
             Contains("w.jsonl:1:") && Contains("arrival_s") && Contains("1000000000") && Contains("86400"));
  CHECK_THAT(bad(ok + R"(, "arrival_s": -0.5})"), Contains("arrival_s") && Contains("-0.5"));
  CHECK_THAT(bad(ok + R"(, "arrival_s": 1e999})"), Contains("w.jsonl:1:") && Contains("1e999"));
  CHECK_THAT(bad(ok + R"(, "arrival_s": "soon"})"),
             Contains("arrival_s") && Contains("\"soon\"") && Contains("not a number"));
  CHECK(parse_workload(ok + R"(, "arrival_s": 86400})", "w")[0].arrival_s == 86400.0);
  // max_new_tokens: an integer 1 .. 2^20; above 2^63 nlohmann stores it unsigned: no wrap.
  CHECK_THAT(bad(R"({"prompt": "a", "max_new_tokens": 18446744073709551615})"),
             Contains("18446744073709551615") && Contains("between 1 and 1048576"));
  CHECK_THAT(bad(R"({"prompt": "a", "max_new_tokens": 9223372036854775808})"), Contains("9223372036854775808"));
  CHECK_THAT(bad(R"({"prompt": "a", "max_new_tokens": 2147483648})"), Contains("2147483648"));
  CHECK_THAT(bad(R"({"prompt": "a", "max_new_tokens": -1})"), Contains("is -1"));
  CHECK_THAT(bad(R"({"prompt": "a", "max_new_tokens": 2.5})"), Contains("2.5") && Contains("not an integer"));
  CHECK_THAT(bad(R"({"prompt": "a", "max_new_tokens": 1e300})"), Contains("not an integer"));
  CHECK(parse_workload(R"({"prompt": "a", "max_new_tokens": 1048576})", "w")[0].max_new_tokens == 1048576);
  // Types, unknown fields, duplicates (both lines named), ids.
  CHECK_THAT(bad(R"({"prompt": "a", "max_new_tokens": 3, "id": 7})"), Contains("\"id\" is 7") && Contains("string"));
  CHECK_THAT(bad(R"({"prompt": "a", "max_new_tokens": 3, "max_new_token": 9})"),
             Contains("unknown field \"max_new_token\""));
  CHECK_THAT(bad(R"({"prompt": ["a"], "max_new_tokens": 3})"), Contains("\"prompt\" is [\"a\"]"));
  CHECK_THAT(bad("[1, 2]"), Contains("w.jsonl:1:") && Contains("JSON object") && Contains("array"));
  CHECK_THAT(bad(R"({"id": "x", "prompt": "a", "max_new_tokens": 1})"
                 "\n\n"
                 R"({"id": "x", "prompt": "b", "max_new_tokens": 1})"),
             Contains("w.jsonl:3:") && Contains("\"x\"") && Contains("lines 1 and 3"));
  CHECK_THAT(bad(R"({"id": "r1", "prompt": "a", "max_new_tokens": 1})"
                 "\n" +
                 ok + "}"),
             Contains("\"r1\" is used twice"));  // a given id may not collide with a generated one
  CHECK_THAT(bad(R"({"id": "", "prompt": "a", "max_new_tokens": 1})"), Contains("\"id\" is empty"));
  CHECK_THAT(bad(R"({"id": "a\nerror: b", "prompt": "a", "max_new_tokens": 1})"),
             Contains("printable") && !Contains("\nerror"));  // an id cannot add a line to a message
  // Bytes: invalid UTF-8 and NUL are JSON errors, a huge line is refused before it is parsed.
  CHECK_THAT(bad("{\"prompt\": \"\xFF\xFE\", \"max_new_tokens\": 1}"),
             Contains("w.jsonl:1:") && Contains("not valid JSON"));
  CHECK_THAT(bad(std::string("{\"prompt\": \"a\0\", \"max_new_tokens\": 1}", 32)), Contains("not valid JSON"));
  CHECK_THAT(bad(std::string(WorkloadLimits::max_line_bytes + 1, ' ')), Contains("bytes long"));
  CHECK_THAT(bad(""), Contains("no requests"));
  CHECK_THAT(bad(" \r\n\t\n"), Contains("no requests"));
  // A directory is named as such, not "no requests".
  const std::string dir = test::temp_path("workload_dir");
  std::filesystem::create_directories(dir);
  CHECK_THROWS_WITH(read_workload(dir), Contains(dir) && Contains("directory"));
  std::filesystem::remove(dir);
  // Lines are numbered in the file (blank lines counted) and kept on the items.
  const auto items = parse_workload("\n" + ok + "}\r\n" + ok + "}", "w");
  REQUIRE(items.size() == 2);
  CHECK(items[0].line == 2);
  CHECK(items[1].line == 3);
  CHECK(items[1].id == "r1");
}

TEST_CASE("checked arithmetic: exact results or an error naming what and the limit", "[misc]") {
  CHECK(checked_add(2, 3, "x") == 5);
  CHECK_THROWS_WITH(checked_add(INT_MAX, 8, "--block-size + context"),
                    Contains("--block-size + context") && Contains("2147483647 + 8 exceeds 2147483647"));
  CHECK_THROWS_WITH(checked_add(INT_MIN, -1, "x"), Contains("is below -2147483648"));
  CHECK(checked_sub<std::size_t>(5, 3, "x") == 2);
  CHECK_THROWS_WITH(checked_sub<std::size_t>(1, 2, "bytes left"), Contains("bytes left: 1 - 2 is below 0"));
  CHECK(checked_mul<std::size_t>(1u << 20, 1u << 20, "x") == (std::size_t{1} << 40));
  CHECK_THROWS_WITH(checked_mul<std::size_t>(std::size_t{1} << 40, std::size_t{1} << 40, "pool bytes"),
                    Contains("pool bytes") && Contains("exceeds 18446744073709551615"));
  CHECK_THROWS_WITH(checked_mul(-65536, 65536, "x"), Contains("is below"));
  CHECK(narrow<int>(std::int64_t{-5}, "x") == -5);
  CHECK_THROWS_WITH(narrow<int>(std::int64_t{1} << 32, "bos id"),
                    Contains("bos id: 4294967296 does not fit in -2147483648..2147483647"));
  CHECK_THROWS_WITH(narrow<int>(std::uint64_t{1} << 63, "x"), Contains("9223372036854775808"));
  CHECK_THROWS_WITH(narrow<std::uint32_t>(-1, "x"), Contains("-1 does not fit in 0..4294967295"));
  CHECK(ceil_div(INT_MAX, INT_MAX) == 1);
  CHECK(ceil_div(64, INT_MAX) == 1);
  CHECK(ceil_div(65, 8) == 9);
  CHECK(ceil_div(0, 8) == 0);
  CHECK_NOTHROW(require_in_range("--block-size", 4096, 1, 4096));
  CHECK_THROWS_WITH(require_in_range("--block-size", INT_MAX, 1, 4096),
                    Equals("--block-size 2147483647: must be between 1 and 4096"));
}

TEST_CASE("flags: every number checked with its flag's name, range and value", "[misc]") {
  auto parse = [](std::vector<std::string> args, bool paged = true, bool device = true) {
    args.insert(args.begin(), "stage");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    return parse_cli(static_cast<int>(argv.size()), argv.data(), "stage", "test", 1, paged, device);
  };
  auto bad = [&](std::vector<std::string> flags) {
    std::vector<std::string> args{"--model", "m.gguf", "--prompt", "hi"};
    args.insert(args.end(), flags.begin(), flags.end());
    try {
      (void)parse(args);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  const auto o = parse({"--model", "m", "--prompt", "p", "--seed", "18446744073709551615", "--block-size", "4096",
                        "--kv-blocks", "0", "--top-p", "1", "--temperature", "0.5"});
  REQUIRE(o);
  CHECK(o->seed == UINT64_MAX);
  CHECK(o->block_size == 4096);
  CHECK(o->temperature == 0.5f);
  CHECK(bad({"--batch", "two"}) == "--batch two: not an integer");
  CHECK(bad({"--batch", "3x"}) == "--batch 3x: not an integer");
  CHECK(bad({"--batch", "1e3"}) == "--batch 1e3: not an integer");
  CHECK(bad({"--batch", "1\nerror: x"}) == "--batch 1\\x0Aerror: x: not an integer");
  CHECK(bad({"--max-new-tokens", "2147483647"}) == "--max-new-tokens 2147483647: must be between 1 and 1048576");
  CHECK(bad({"--max-new-tokens", "99999999999999999999"}) ==
        "--max-new-tokens 99999999999999999999: must be between 1 and 1048576");
  CHECK(bad({"--block-size", "2147483647"}) == "--block-size 2147483647: must be between 1 and 4096");
  CHECK_THAT(bad({"--kv-blocks", "2147483647"}), StartsWith("--kv-blocks 2147483647: must be between 0 and"));
  CHECK_THAT(bad({"--token-budget", "0"}), StartsWith("--token-budget 0: must be between 1"));
  CHECK_THAT(bad({"--max-queue", "-1"}), StartsWith("--max-queue -1: must be between 1"));
  CHECK_THAT(bad({"--top-k", "-1"}), StartsWith("--top-k -1: must be between 0"));
  CHECK(bad({"--seed", "-1"}) == "--seed -1: must be between 0 and 18446744073709551615");
  CHECK(bad({"--seed", "18446744073709551616"}) ==
        "--seed 18446744073709551616: must be between 0 and 18446744073709551615");
  for (const char* v : {"nan", "NaN", "inf", "-inf", "1e999"}) {
    CHECK(bad({"--temperature", v}) == std::string("--temperature ") + v + ": must be a finite number");
    CHECK(bad({"--top-p", v}) == std::string("--top-p ") + v + ": must be a finite number");
    CHECK(bad({"--kv-memory-fraction", v}) == std::string("--kv-memory-fraction ") + v + ": must be a finite number");
  }
  CHECK(bad({"--top-p", "0"}) == "--top-p 0: must be in (0, 1]");
  CHECK(bad({"--temperature", "-1"}) == "--temperature -1: must be in [0, 100]");
  CHECK(bad({"--temperature", "warm"}) == "--temperature warm: not a number");
  CHECK(bad({"--temperature", ""}) == "--temperature \"\": not a number");
  CHECK_THAT(bad({"--batch"}), Contains("batch"));  // cxxopts: the option is missing an argument
  CHECK_THROWS_WITH(parse({"--model=", "--prompt", "hi"}),
                    Equals("--model is empty: give a GGUF file or a llama2.c .bin"));
  const std::string dir = test::temp_path("cli_dir");
  std::filesystem::create_directories(dir);
  CHECK_THROWS_WITH(parse({"--model", "m", "--workload", dir}),
                    Equals("--workload " + dir + ": is a directory, not a file"));
  CHECK_THROWS_WITH(parse({"--model", dir, "--prompt", "p"}), Contains("--model " + dir) && Contains("directory"));
  std::filesystem::remove(dir);
  // A stage without the paged-KV flags does not take them.
  CHECK_THROWS_WITH(parse({"--model", "m", "--prompt", "p", "--block-size", "8"}, false, false),
                    Contains("block-size"));
}

TEST_CASE("non-finite logits are found with their kind and index", "[misc]") {
  std::vector<float> l{0.5f, 1.0f, -2.0f, 3.0f};
  CHECK(non_finite_logits(l.data(), 4, 0).empty());
  l[2] = std::numeric_limits<float>::quiet_NaN();
  CHECK(non_finite_logits(l.data(), 4, 5) == "step 5 produced non-finite logits (NaN at vocab index 2)");
  l[2] = 0.0f;
  l[3] = -std::numeric_limits<float>::infinity();
  CHECK(non_finite_logits(l.data(), 4, 0) == "step 0 produced non-finite logits (-Inf at vocab index 3)");
  l[1] = std::numeric_limits<float>::infinity();
  CHECK(non_finite_logits(l.data(), 4, 0) == "step 0 produced non-finite logits (+Inf at vocab index 1)");
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
