#include "padded_batch.h"

#include <algorithm>
#include <string>

#include "common/error.h"

namespace llm::stage02 {

PaddedBatch pad_left(const std::vector<std::vector<int>>& prompts, int pad_id) {
  PaddedBatch b;
  b.rows = static_cast<int>(prompts.size());
  for (const auto& p : prompts) {
    if (p.empty()) throw Error("static batch: an empty prompt cannot be padded");
    b.columns = std::max(b.columns, static_cast<int>(p.size()));
  }
  const auto cells = static_cast<std::size_t>(b.rows) * static_cast<std::size_t>(b.columns);
  b.tokens.assign(cells, pad_id);
  b.positions.assign(cells, 0);
  b.pad.assign(prompts.size(), 0);
  // BEGIN EXERCISE(pad-positions): right-align each prompt; its first real token is at position 0
  for (std::size_t r = 0; r < prompts.size(); ++r) {
    const int len = static_cast<int>(prompts[r].size());
    const int pad = b.columns - len;
    b.pad[r] = pad;
    for (int i = 0; i < len; ++i) {
      const auto cell = r * static_cast<std::size_t>(b.columns) + static_cast<std::size_t>(pad + i);
      b.tokens[cell] = prompts[r][static_cast<std::size_t>(i)];
      b.positions[cell] = i;
    }
  }
  // END EXERCISE
  return b;
}

}  // namespace llm::stage02
