// libFuzzer entry point: any byte string given to the GGUF reader (and, if it parses, to the
// tokenizer and weight loaders) must either load or throw llm::Error: no crash, no hang, no
// sanitizer report.
#include <cstddef>
#include <cstdint>

#include "common/error.h"
#include "common/gguf.h"
#include "common/model_weights.h"
#include "common/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    llm::GGUFFile f(data, size, "fuzz.gguf");
    try {
      auto tok = llm::load_gguf_tokenizer(f);
      (void)tok->encode("Hello, world! 12 \xF0\x9F\x99\x82");
    } catch (const llm::Error&) {
    }
    try {
      (void)llm::load_gguf_weights(f);
    } catch (const llm::Error&) {
    }
  } catch (const llm::Error&) {
  }
  return 0;
}
