// make_tokenizer_seeds (fuzzing only): writes seed inputs for fuzz_tokenizer_bpe and
// fuzz_tokenizer_spm (format: fuzz_tokenizer_input.h) from the committed tokenizers, so that the
// fuzzers start from real vocabularies and merges: SmolLM2's first merges and special tokens,
// the spm_tiny vocabulary with its scores, each with prompts from datasets/prompts.
//
//   make_tokenizer_seeds <repo root> <bpe seed dir> <spm seed dir>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "common/error.h"
#include "common/gguf.h"
#include "common/tokenizer.h"
#include "tests/fuzz/fuzz_tokenizer_input.h"

namespace {
void write(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  if (!out) throw llm::Error(path.string() + ": cannot write a seed");
}
std::string record(char kind, int score, const std::string& piece) {
  return std::string(1, kind) + static_cast<char>(static_cast<std::int8_t>(score)) + piece + "\n";
}
bool has_newline(const std::string& s) {
  return s.find('\n') != std::string::npos;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: make_tokenizer_seeds <repo root> <bpe seed dir> <spm seed dir>\n";
    return 2;
  }
  try {
    const std::filesystem::path root = argv[1], bpe_dir = argv[2], spm_dir = argv[3];
    std::filesystem::create_directories(bpe_dir);
    std::filesystem::create_directories(spm_dir);
    std::vector<std::string> texts;
    for (const char* name : {"tiny.txt", "story.txt", "chat.txt"}) {
      std::ifstream in(root / "datasets/prompts" / name, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      texts.push_back(ss.str().substr(0, 300));
    }
    texts.push_back("<|im_start|>user\nHi 123 don't\t\xC3\xA9t\xC3\xA9  \xF0\x9F\x99\x82<|im_end|>");

    llm::GGUFFile smol((root / "datasets/tokenizers/smollm2_tokenizer.gguf").string());
    const auto smol_tok = llm::load_gguf_tokenizer(smol);
    const llm::Vocabulary& sv = smol_tok->vocab();
    std::string bpe_vocab;
    for (std::size_t id = 0; id < 17; ++id) {  // SmolLM2's special tokens
      const int kind = static_cast<int>(sv.kinds[id]);
      if (!has_newline(sv.pieces[id])) bpe_vocab += record(static_cast<char>('0' + kind), 0, sv.pieces[id]);
    }
    for (std::size_t r = 0; r < 400 && r < sv.merges.size(); ++r) {
      const std::string& m = sv.merges[r];
      if (has_newline(m)) continue;
      const std::size_t space = m.find(' ');
      bpe_vocab += record('1', 0, m.substr(0, space) + m.substr(space + 1));
      bpe_vocab += record('m', 0, m);
    }
    for (std::size_t i = 0; i < texts.size(); ++i) {
      const std::string head = {static_cast<char>(llm::fuzz::kByteTokens | llm::fuzz::kPrefixOrSmollm), 40};
      write(bpe_dir / ("smollm2_" + std::to_string(i)), head + bpe_vocab + "\n" + texts[i]);
    }

    const auto spm_tok =
        llm::load_llama2c_tokenizer((root / "datasets/tokenizers/spm_tiny_tokenizer.bin").string(), 512);
    const llm::Vocabulary& pv = spm_tok->vocab();
    std::string spm_vocab;
    for (std::size_t id = 0; id < pv.pieces.size(); ++id) {
      const llm::TokenKind k = pv.kinds[id];
      if (k == llm::TokenKind::Byte || k == llm::TokenKind::Unknown || has_newline(pv.pieces[id])) continue;
      const int score = static_cast<int>(std::lround(std::fmax(-128.0, std::fmin(127.0, pv.scores[id] / 4))));
      spm_vocab += record(static_cast<char>('0' + static_cast<int>(k)), score, pv.pieces[id]);
    }
    for (std::size_t i = 0; i < texts.size(); ++i) {
      const std::string head = {
          static_cast<char>(llm::fuzz::kByteTokens | llm::fuzz::kUnk | llm::fuzz::kPrefixOrSmollm), 40};
      write(spm_dir / ("spm_tiny_" + std::to_string(i)), head + spm_vocab + "\n" + texts[i]);
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
