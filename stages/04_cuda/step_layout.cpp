#include "step_layout.h"

#include <algorithm>
#include <string>

#include "common/error.h"

namespace llm::stage04 {

int kv_slot(std::span<const int> table, int pos, int block_size) {
  const auto j = static_cast<std::size_t>(pos / block_size);
  if (pos < 0 || j >= table.size())
    throw Error("step layout: position " + std::to_string(pos) + " has no block in a table of " +
                std::to_string(table.size()) + " blocks");
  // BEGIN EXERCISE(slot-mapping): the cache address of position pos
  return table[j] * block_size + pos % block_size;
  // END EXERCISE
}

StepLayout layout_step(const stage03::StepBatch& step, int block_size) {
  StepLayout L;
  L.n = static_cast<int>(step.tokens.size());
  // Where each chunk's rows start in the step's order.
  std::vector<int> first_row;
  int row = 0;
  for (const stage03::StepRows& c : step.chunks) {
    first_row.push_back(row);
    row += c.count;
    L.max_blocks = std::max(L.max_blocks, static_cast<int>(c.table.size()));
  }
  if (row != L.n) throw Error("step layout: the chunks hold " + std::to_string(row) + " rows, the step " + std::to_string(L.n));

  // BEGIN EXERCISE(row-order): decode rows first, then each prompt chunk's rows together
  for (std::size_t c = 0; c < step.chunks.size(); ++c)
    if (step.chunks[c].count == 1) L.order.push_back(first_row[c]);
  L.n_decode = static_cast<int>(L.order.size());
  for (std::size_t c = 0; c < step.chunks.size(); ++c) {
    const stage03::StepRows& ch = step.chunks[c];
    if (ch.count == 1) continue;
    L.chunks.push_back(PrefillChunk{static_cast<int>(L.order.size()), ch.count, ch.start,
                                    L.n_decode + static_cast<int>(L.chunks.size())});
    for (int i = 0; i < ch.count; ++i) L.order.push_back(first_row[c] + i);
  }
  // The logits the engine wants, by the device row each of its rows went to.
  std::vector<int> device_row(static_cast<std::size_t>(L.n));
  for (int d = 0; d < L.n; ++d) device_row[static_cast<std::size_t>(L.order[static_cast<std::size_t>(d)])] = d;
  for (const int r : step.logit_rows) L.logit_rows.push_back(device_row.at(static_cast<std::size_t>(r)));
  // END EXERCISE

  // Which chunk each step row belongs to, for its table.
  std::vector<int> chunk_of(static_cast<std::size_t>(L.n));
  for (std::size_t c = 0; c < step.chunks.size(); ++c)
    for (int i = 0; i < step.chunks[c].count; ++i) chunk_of[static_cast<std::size_t>(first_row[c] + i)] = static_cast<int>(c);
  for (const int r : L.order) {
    const stage03::StepRows& ch = step.chunks[static_cast<std::size_t>(chunk_of[static_cast<std::size_t>(r)])];
    const int pos = step.positions[static_cast<std::size_t>(r)];
    L.tokens.push_back(step.tokens[static_cast<std::size_t>(r)]);
    L.positions.push_back(pos);
    L.slots.push_back(kv_slot(ch.table, pos, block_size));
  }

  // Block tables: one row per decode row, then one per prompt chunk.
  const std::size_t width = static_cast<std::size_t>(L.max_blocks);
  L.tables.assign((static_cast<std::size_t>(L.n_decode) + L.chunks.size()) * width, 0);
  auto copy_table = [&](std::span<const int> t, std::size_t into) {
    std::copy(t.begin(), t.end(), L.tables.begin() + static_cast<std::ptrdiff_t>(into * width));
  };
  for (int d = 0; d < L.n_decode; ++d) {
    const int r = L.order[static_cast<std::size_t>(d)];
    copy_table(step.chunks[static_cast<std::size_t>(chunk_of[static_cast<std::size_t>(r)])].table, static_cast<std::size_t>(d));
    L.seq_lens.push_back(L.positions[static_cast<std::size_t>(d)] + 1);
    L.max_seq_len = std::max(L.max_seq_len, L.seq_lens.back());
  }
  for (const PrefillChunk& pc : L.chunks) {
    const int r = L.order[static_cast<std::size_t>(pc.row_begin)];
    copy_table(step.chunks[static_cast<std::size_t>(chunk_of[static_cast<std::size_t>(r)])].table, static_cast<std::size_t>(pc.table));
  }
  return L;
}

}  // namespace llm::stage04
