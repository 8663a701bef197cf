// padded_batch.h: B prompts of different lengths made into one rectangle of tokens.
//
// Prompts are padded on the left, so that every row's last prompt token sits in the same last
// column and every row's next token goes into the same next column:
//
//   row 0:  [pad][pad] The  cat  sat        pad[0] = 2   positions  -  -  0  1  2
//   row 1:   Once upon  a  time there       pad[1] = 0   positions  0  1  2  3  4
//
// Each row keeps its own positions (RoPE sees 0, 1, 2 ... from the row's first real token);
// pad columns are never attended to (see batch_kv_cache.h).
#pragma once

#include <vector>

namespace llm::stage02 {

/// A left-padded batch of prompts: B rows of `columns` tokens, row-major.
struct PaddedBatch {
  int rows = 0;
  int columns = 0;             ///< the longest prompt's length
  std::vector<int> tokens;     ///< [rows, columns]; pad columns hold pad_id
  std::vector<int> positions;  ///< [rows, columns]; the RoPE position of each token, 0 in pad columns
  std::vector<int> pad;        ///< [rows]; how many pad columns row r starts with
};

/// Left-pads `prompts` (each non-empty) to the longest one's length with `pad_id`.
PaddedBatch pad_left(const std::vector<std::vector<int>>& prompts, int pad_id);

}  // namespace llm::stage02
