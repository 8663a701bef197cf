// model_weights.h: a Llama model's weights in fp32, dequantized at load, plus its tokenizer.
//
// Every matrix is row-major [out, in] (the PyTorch nn.Linear / GGUF layout), so a linear
// layer is y = x W^T. Q and K rows are laid out for interleaved (pairwise) RoPE, as GGUF
// `llama` tensors and llama2.c checkpoints are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/model_config.h"
#include "common/tokenizer.h"

namespace llm {

/// One transformer block.
struct LayerWeights {
  std::vector<float> attn_norm;  ///< [dim]
  std::vector<float> wq;         ///< [n_heads * head_dim, dim]
  std::vector<float> wk;         ///< [n_kv_heads * head_dim, dim]
  std::vector<float> wv;         ///< [n_kv_heads * head_dim, dim]
  std::vector<float> wo;         ///< [dim, n_heads * head_dim]
  std::vector<float> ffn_norm;   ///< [dim]
  std::vector<float> w_gate;     ///< [hidden_dim, dim]
  std::vector<float> w_up;       ///< [hidden_dim, dim]
  std::vector<float> w_down;     ///< [dim, hidden_dim]
};

/// All weights of a model.
struct ModelWeights {
  ModelConfig config;
  std::vector<float> token_embd;  ///< [vocab, dim]
  std::vector<LayerWeights> layers;
  std::vector<float> output_norm;  ///< [dim]
  std::vector<float> output;       ///< [vocab, dim]; empty when the embeddings are tied

  /// The classifier matrix [vocab, dim]: `output`, or `token_embd` when tied.
  const float* classifier() const { return output.empty() ? token_embd.data() : output.data(); }
  /// Bytes of fp32 weights held.
  std::size_t bytes() const;
};

/// A model file loaded: config, weights, tokenizer, and where it came from.
struct Model {
  std::string path;
  std::string format;  ///< "gguf" or "llama2c"
  ModelWeights weights;
  std::unique_ptr<Tokenizer> tokenizer;

  const ModelConfig& config() const { return weights.config; }
};

/// Loads a GGUF or llama2.c checkpoint (told apart by the magic). `tokenizer_path` is needed for
/// llama2.c (a tokenizer.bin) and ignored for GGUF (the tokenizer is inside). Throws llm::Error
/// naming the file, field and value on any problem.
Model load_model(const std::string& model_path, const std::string& tokenizer_path = "");

/// GGUF only: weights and config (no tokenizer).
ModelWeights load_gguf_weights(const class GGUFFile& file);
/// llama2.c only: the legacy (version 0) .bin checkpoint: seven int32 (dim, hidden_dim,
/// n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size means the
/// classifier is not shared) followed by fp32 weights.
ModelWeights load_llama2c_weights(const std::string& path);
/// The same from an in-memory image (the fuzzer's entry); `name` is used in error messages.
ModelWeights load_llama2c_weights(const std::uint8_t* data, std::size_t size, const std::string& name);

/// What a file's first bytes say about it as a llama2.c checkpoint (a format without a magic).
enum class Llama2cHeaderStatus {
  kValid,    ///< every header field plausible (positive, within ModelConfig's limits, consistent)
             ///< and the exact size it implies is the file's
  kDamaged,  ///< recognisably llama2.c but not loadable: plausible fields and the wrong size
             ///< (truncated?), or a versioned 'ak42' export
  kOther,    ///< the header's fields are not a llama2.c model's: some other file
};
/// Classifies a file image; `why` (if given) gets the reason when it is not kValid, e.g.
/// "llama2.c header: dim=1936287828, ...: dim is 1936287828 (must be between 1 and 65536)".
/// The loader uses it to tell a llama2.c checkpoint from any other file.
Llama2cHeaderStatus check_llama2c_header(const std::uint8_t* data, std::size_t size, std::string* why = nullptr);

/// Shared by the loaders: refuses a tensor holding NaN or Inf with llm::Error
/// "<file>: tensor '<name>' element i (row r, column c) is nan", plus `why(i)` when given (the
/// quantized block's scales, say). `values` is [rows, cols], row-major.
void refuse_non_finite(const std::string& file, const std::string& tensor, const std::vector<float>& values,
                       std::size_t cols, const std::function<std::string(std::size_t)>& why = {});

}  // namespace llm
