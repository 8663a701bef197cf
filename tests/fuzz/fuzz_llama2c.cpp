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

// This process's own pair of files (libFuzzer may run several jobs side by side), removed at exit.
struct TempFiles {
  std::string model = "/tmp/fuzz_llama2c-" + std::to_string(::getpid()) + ".bin";
  std::string tokenizer = "/tmp/fuzz_llama2c-" + std::to_string(::getpid()) + ".tok";
  ~TempFiles() {
    std::remove(model.c_str());
    std::remove(tokenizer.c_str());
  }
};

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
  static const TempFiles files;
  write(files.model, model, model_bytes);
  write(files.tokenizer, model + model_bytes, body - model_bytes);
  try {
    llm::Model m = llm::load_model(files.model, files.tokenizer);
    const auto ids = m.tokenizer->encode("Hello, world! 12 \xF0\x9F\x99\x82 ab\na");
    (void)m.tokenizer->decode(ids);
  } catch (const llm::Error&) {
  }
  return 0;
}
