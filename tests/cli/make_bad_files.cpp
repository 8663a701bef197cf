// Writes the damaged model files that the command-line tests feed to the stage executables.
// Usage: make_bad_files <output dir>
#include <cstdio>
#include <string>

#include "tests/helpers/gguf_writer.h"
#include "tests/helpers/random_model.h"

using namespace llm::test;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_bad_files <dir>\n");
    return 2;
  }
  const std::string dir = argv[1];
  const auto good = read_file(repo_path("datasets/test/tiny_random.gguf"));

  write_file(dir + "/truncated.gguf",
             std::vector<std::uint8_t>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(good.size() / 2)));
  auto magic = good;
  magic[0] = 'X';
  write_file(dir + "/bad_magic.gguf", magic);
  auto version = good;
  version[4] = 9;
  write_file(dir + "/bad_version.gguf", version);

  GGUFWriter q6;
  q6.add_string("general.architecture", "llama");
  q6.add_tensor("blk.0.ffn_down.weight", {256}, 14, std::vector<std::uint8_t>(210, 0));
  q6.write(dir + "/q6k.gguf");

  GGUFWriter past;
  past.add_string("general.architecture", "llama");
  past.add_tensor("token_embd.weight", {32}, 0, std::vector<std::uint8_t>(128, 0));
  auto past_bytes = past.bytes();
  past_bytes.resize(past_bytes.size() - 64);  // the tensor's data runs past the end
  write_file(dir + "/offset_past_end.gguf", past_bytes);

  RandomModelSpec spec{"cli", 16, 1, 2, 1, 24, 40, 16, 10000.0f, 1e-5f, true, 9};
  const auto w = make_random_weights(spec);
  write_llama2c_model(w, dir + "/model.bin");
  write_llama2c_tokenizer(40, dir + "/tokenizer.bin");
  write_llama2c_tokenizer(30, dir + "/tokenizer_small.bin");
  gguf_for(w, 39).write(dir + "/vocab_mismatch.gguf");
  // Stage 06: a target and a draft with its vocabulary but a shorter context (16 < 32).
  RandomModelSpec longer = spec;
  longer.context = 32;
  longer.seed = 10;
  gguf_for(make_random_weights(longer)).write(dir + "/spec_target.gguf");
  gguf_for(w).write(dir + "/short_context_draft.gguf");
  return 0;
}
