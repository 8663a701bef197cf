// model_loader.cpp: pick the format by the file's first bytes and load weights and tokenizer.
#include <cstring>
#include <fstream>

#include "common/error.h"
#include "common/gguf.h"
#include "common/model_weights.h"

namespace llm {

std::size_t ModelWeights::bytes() const {
  std::size_t n = token_embd.size() + output_norm.size() + output.size();
  for (const auto& L : layers) {
    n += L.attn_norm.size() + L.wq.size() + L.wk.size() + L.wv.size() + L.wo.size() + L.ffn_norm.size() +
         L.w_gate.size() + L.w_up.size() + L.w_down.size();
  }
  return n * sizeof(float);
}

Model load_model(const std::string& model_path, const std::string& tokenizer_path) {
  char magic[4] = {0, 0, 0, 0};
  {
    std::ifstream in(model_path, std::ios::binary);
    if (!in) throw Error(model_path + ": cannot open model file");
    in.read(magic, 4);
  }
  Model m;
  m.path = model_path;
  const bool named_gguf = model_path.size() >= 5 && model_path.compare(model_path.size() - 5, 5, ".gguf") == 0;
  if (std::memcmp(magic, "GGUF", 4) == 0 || named_gguf) {  // a .gguf with a bad magic gets the GGUF error
    m.format = "gguf";
    GGUFFile f(model_path);
    m.weights = load_gguf_weights(f);
    if (!f.has("tokenizer.ggml.model")) {
      throw Error(model_path + ": the GGUF file has no tokenizer (tokenizer.ggml.model is missing)");
    }
    m.tokenizer = load_gguf_tokenizer(f);
  } else {
    m.format = "llama2c";
    m.weights = load_llama2c_weights(model_path);
    if (tokenizer_path.empty()) {
      throw Error(model_path + ": a llama2.c checkpoint needs its tokenizer: pass --tokenizer path/to/tokenizer.bin");
    }
    m.tokenizer = load_llama2c_tokenizer(tokenizer_path, m.weights.config.vocab_size);
  }
  if (m.tokenizer->vocab_size() != m.weights.config.vocab_size) {
    throw Error(model_path + ": the tokenizer has " + std::to_string(m.tokenizer->vocab_size()) +
                " tokens but the model's vocab_size is " + std::to_string(m.weights.config.vocab_size));
  }
  return m;
}

}  // namespace llm
