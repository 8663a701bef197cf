// random_model.h (tests only): random-weight Llama models of any shape, written as GGUF or as
// llama2.c checkpoints, plus the shapes every stage is tested on.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/model_weights.h"
#include "tests/helpers/gguf_writer.h"

namespace llm::test {

/// A model shape and the seed of its weights.
struct RandomModelSpec {
  std::string name;
  int dim = 32, n_layers = 2, n_heads = 4, n_kv_heads = 2, hidden_dim = 48, vocab = 64, context = 32;
  float rope_theta = 10000.0f, norm_eps = 1e-5f;
  bool tied = true;
  std::uint64_t seed = 1;
};

/// The awkward shapes: grouped-query attention, odd head counts, dims not a multiple of 8.
std::vector<RandomModelSpec> awkward_specs();

/// Seeded random weights of the spec's shape (embeddings ~0.5 N(0,1), matrices N(0,1)/sqrt(in),
/// norms 1 + 0.1 N(0,1)). head_dim = dim / n_heads.
ModelWeights make_random_weights(const RandomModelSpec& spec);

/// A GGUF writer pre-filled with the config keys, a small SentencePiece-style vocabulary of
/// `vocab` pieces ("<unk>", "<s>", "</s>", then "t3", "t4", ...) and all weight tensors (F32).
/// tokenizer_vocab > 0 writes a tokenizer of that many pieces instead (to test mismatches).
GGUFWriter gguf_for(const ModelWeights& w, int tokenizer_vocab = 0);
/// The same written to `path`.
void write_gguf_model(const ModelWeights& w, const std::string& path);
/// A llama2.c (version 0) checkpoint of the same weights. theta must be 10000 and eps 1e-5.
void write_llama2c_model(const ModelWeights& w, const std::string& path);
/// A llama2.c tokenizer.bin with the same vocabulary as gguf_for().
void write_llama2c_tokenizer(int vocab, const std::string& path);

/// A fresh path in the system temp directory: "<tmp>/llm-test-<pid>-<name>".
std::string temp_path(const std::string& name);

/// Repository root (compiled in), for the committed files under datasets/.
std::string repo_path(const std::string& relative);

}  // namespace llm::test
