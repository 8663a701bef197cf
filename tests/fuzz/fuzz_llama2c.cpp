// libFuzzer entry point for the llama2.c reader: the input is a checkpoint and a tokenizer.bin,
// u32 n (little-endian) | n bytes of model | the rest as tokenizer (n is clamped to what is
// there). Both go through load_model as files, so the format sniffing ("not a model file",
// damaged GGUF magic) is fuzzed too. Any input must load or throw llm::Error: no crash, no hang,
// no sanitizer report. Seeds: tests/fuzz/seeds_llama2c (make_llama2c_seeds.py).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "common/error.h"
#include "common/model_weights.h"
#include "common/tokenizer.h"

namespace {

// Paths of this process's own (libFuzzer may run several jobs side by side).
std::string temp_path(const char* suffix) {
  return "/tmp/fuzz_llama2c-" + std::to_string(::getpid()) + suffix;
}

void write(const std::string& path, const std::uint8_t* data, std::size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return;
  if (size > 0) std::fwrite(data, 1, size, f);
  std::fclose(f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::uint32_t n = 0;
  if (size >= 4) std::memcpy(&n, data, 4);
  const std::size_t body = size >= 4 ? size - 4 : 0;
  const std::size_t model_bytes = n < body ? n : body;
  const std::uint8_t* model = data + (size >= 4 ? 4 : size);
  const std::string model_path = temp_path(".bin"), tokenizer_path = temp_path(".tok");
  write(model_path, model, model_bytes);
  write(tokenizer_path, model + model_bytes, body - model_bytes);
  try {
    llm::Model m = llm::load_model(model_path, tokenizer_path);
    const auto ids = m.tokenizer->encode("Hello, world! 12 \xF0\x9F\x99\x82 ab\na");
    (void)m.tokenizer->decode(ids);
  } catch (const llm::Error&) {
  }
  return 0;
}
