// golden.h (tests only): reading the golden-logit files the reference scripts write:
//   {"model": ..., "generator": ..., "sequences": [{"tokens": [...], "logits": [[vocab floats] per position]}]}
#pragma once

#include <string>
#include <vector>

namespace llm::test {

/// One sequence: its tokens and the teacher-forced logits [tokens, vocab], row-major.
struct GoldenSequence {
  std::vector<int> tokens;
  std::vector<float> logits;
};

/// All sequences of a golden file (path relative to the repository root). Throws
/// std::runtime_error if the file is missing or has no sequences.
std::vector<GoldenSequence> read_golden_logits(const std::string& relative_path);

}  // namespace llm::test
