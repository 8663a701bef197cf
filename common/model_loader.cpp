// model_loader.cpp: pick the format by the file's first bytes and load weights and tokenizer.
//
// GGUF has a magic; llama2.c does not. So: "GGUF" is GGUF, bytes close to it are a damaged
// GGUF, a llama2.c header is believed only when its fields are plausible, and anything else is
// "not a model file" rather than a llama2.c checkpoint with nonsense dimensions.
#include <cstdio>

#include "common/error.h"
#include "common/gguf.h"
#include "common/mapped_file.h"
#include "common/model_weights.h"
#include "kernels/cpu/dequantize.h"

namespace llm {

std::size_t ModelWeights::bytes() const {
  std::size_t n = token_embd.size() + output_norm.size() + output.size();
  for (const auto& L : layers) {
    n += L.attn_norm.size() + L.wq.size() + L.wk.size() + L.wv.size() + L.wo.size() + L.ffn_norm.size() +
         L.w_gate.size() + L.w_up.size() + L.w_down.size();
  }
  return n * sizeof(float);
}

void refuse_non_finite(const std::string& file, const std::string& tensor, const std::vector<float>& values,
                       std::size_t cols, const std::function<std::string(std::size_t)>& why) {
  const std::size_t i = cpu::first_non_finite(values.data(), values.size());
  if (i == values.size()) return;
  char value[16];
  std::snprintf(value, sizeof(value), "%g", static_cast<double>(values[i]));
  const std::string where = cols > 0 && values.size() > cols
                                ? " (row " + std::to_string(i / cols) + ", column " + std::to_string(i % cols) + ")"
                                : "";
  throw Error(file + ": tensor '" + tensor + "' element " + std::to_string(i) + where + " is " + value +
              (why ? why(i) : std::string()) + ": weights must be finite");
}

namespace {

enum class ModelFormat { kGGUF, kLlama2c };

// Which reader gets the file; throws "not a model file" when neither would make sense of it.
ModelFormat sniff_format(const std::string& path) {
  const MappedFile file(path);  // mapping is lazy: only the pages looked at are read
  switch (classify_gguf_magic(file.data(), file.size())) {
    case GGUFMagic::kExact:
    case GGUFMagic::kDamaged:  // the GGUF reader says how the magic is damaged
      return ModelFormat::kGGUF;
    case GGUFMagic::kOther:
      break;
  }
  std::string why;
  if (check_llama2c_header(file.data(), file.size(), &why) != Llama2cHeaderStatus::kOther)
    return ModelFormat::kLlama2c;  // the llama2.c reader loads it or says what is wrong with it
  const std::string magic = file.size() == 0
                                ? "an empty file"
                                : "it starts with '" + printable_magic(file.data(), file.size()) + "', not 'GGUF'";
  throw Error(path + ": not a model file (neither GGUF: " + magic + "; nor a llama2.c checkpoint: " + why + ")");
}

}  // namespace

Model load_model(const std::string& model_path, const std::string& tokenizer_path) {
  Model m;
  m.path = model_path;
  if (sniff_format(model_path) == ModelFormat::kGGUF) {
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
