#include "synthetic.h"

#include "common/error.h"

namespace llm::stage04 {

std::vector<std::string> synthetic_names() { return {"llama3-8b", "llama3.2-1b"}; }

ModelConfig synthetic_config(const std::string& name) {
  ModelConfig c;
  c.rope_theta = 500000.0f;
  c.norm_eps = 1e-5f;
  c.vocab_size = 128256;
  c.context_length = 32768;
  if (name == "llama3-8b") {  // meta-llama/Meta-Llama-3-8B config.json
    c.dim = 4096, c.n_layers = 32, c.n_heads = 32, c.n_kv_heads = 8, c.head_dim = 128, c.hidden_dim = 14336;
    c.tied_embeddings = false;
  } else if (name == "llama3.2-1b") {  // meta-llama/Llama-3.2-1B config.json
    c.dim = 2048, c.n_layers = 16, c.n_heads = 32, c.n_kv_heads = 8, c.head_dim = 64, c.hidden_dim = 8192;
    c.tied_embeddings = true;
  } else {
    std::string known;
    for (const auto& n : synthetic_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("--synthetic " + name + ": unknown model shape (known: " + known + ")");
  }
  c.validate("--synthetic " + name);
  return c;
}

}  // namespace llm::stage04
