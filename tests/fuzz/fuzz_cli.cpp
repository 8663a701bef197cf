// libFuzzer entry point: the stage flag parser on any command line. The input is argv split at
// NUL bytes (the first byte picks which optional flag groups exist); parse_cli must return
// options within their documented ranges, print help, or throw llm::Error.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "common/cli.h"
#include "common/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool paged_kv = data[0] & 1, device_backend = data[0] & 2;
  std::vector<std::string> args{"stage_fuzz"};
  std::string cur;
  for (std::size_t i = 1; i < size; ++i) {
    if (data[i] == 0) {
      args.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(static_cast<char>(data[i]));
    }
  }
  args.push_back(cur);
  if (args.size() > 64) return 0;  // a command line, not a flood
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::cout.setstate(std::ios::failbit);  // --help would print on every run
  try {
    const auto o =
        llm::parse_cli(static_cast<int>(args.size()), argv.data(), "stage_fuzz", "fuzz", 1, paged_kv, device_backend);
    if (o) {
      using L = llm::CliLimits;
      const bool ok = !o->model.empty() && o->max_new_tokens >= 1 && o->max_new_tokens <= L::max_new_tokens &&
                      std::isfinite(o->temperature) && o->temperature >= 0 && o->top_k >= 0 && o->top_k <= L::top_k &&
                      o->top_p > 0 && o->top_p <= 1 && o->batch >= 1 && o->batch <= L::batch && o->block_size >= 1 &&
                      o->block_size <= L::block_size && o->kv_blocks >= 0 && o->kv_blocks <= L::kv_blocks &&
                      o->token_budget >= 1 && o->token_budget <= L::token_budget && o->max_queue >= 1 &&
                      o->max_queue <= L::max_queue && o->kv_memory_fraction > 0 && o->kv_memory_fraction <= 1 &&
                      (o->prompt_given != !o->workload.empty());
      if (!ok) std::abort();  // parse_cli let a value through that it documents as refused
    }
  } catch (const llm::Error&) {
  }
  return 0;
}
