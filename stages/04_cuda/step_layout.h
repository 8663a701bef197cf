// step_layout.h: one scheduled step, laid out the way the device kernels want it.
//
// The scheduler (stage 03) hands over a step as chunks: single decode tokens of running
// sequences and runs of prompt tokens, in the order it chose them. The kernels want three
// things that order does not give them:
//   1. every row's KV slot: the cache address its K/V is written to (rope_store_kv);
//   2. the decode rows together, as one batch for the split-KV decode kernel, each with its
//      sequence's block table and length;
//   3. each prompt chunk as a contiguous run of rows, for the prefill kernel.
// So the layout reorders the rows (decode rows first, then the chunks) and remembers where
// each row went, so that the logits come back in the order the engine asked for.
//
//   step (scheduler order):   [A:p0 p1 p2] [B:d] [C:d] [D:p0 p1]      A, D: prompt chunks
//   device order:             [B:d] [C:d] [A:p0 p1 p2] [D:p0 p1]      B, C: decode tokens
//                              decode batch  prefill chunk 0   chunk 1
#pragma once

#include <vector>

#include "stages/03_continuous_batching/step_executor.h"

namespace llm::stage04 {

/// A prompt chunk in device order: rows row_begin .. row_begin + count - 1 are its tokens at
/// positions start .. start + count - 1; they attend causally over positions 0 .. start+count-1,
/// read through row `table` of StepLayout::tables.
struct PrefillChunk {
  int row_begin = 0;
  int count = 0;
  int start = 0;
  int table = 0;
};

/// The device's view of one step. Every per-row vector is in device order.
struct StepLayout {
  int n = 0;             ///< rows in the step
  int n_decode = 0;      ///< rows 0 .. n_decode - 1 are single-token chunks (decode rows)
  std::vector<int> order;      ///< [n]: device row d holds the step's row order[d]
  std::vector<int> tokens;     ///< [n]
  std::vector<int> positions;  ///< [n]
  std::vector<int> slots;      ///< [n]: block * block_size + offset of the row's K/V
  int max_blocks = 0;          ///< columns of `tables` (the longest table in the step)
  /// [n_decode + chunks.size(), max_blocks]: the block table of decode row i is row i, that of
  /// chunk c is row n_decode + c; unused entries are 0 (never read: they lie past the length).
  std::vector<int> tables;
  std::vector<int> seq_lens;   ///< [n_decode]: position + 1 (the keys a decode row sees)
  int max_seq_len = 0;         ///< the largest seq_lens entry (0 when there are no decode rows)
  std::vector<PrefillChunk> chunks;
  std::vector<int> logit_rows;  ///< device rows whose logits are wanted, in the step's order
};

/// The KV slot of position `pos` of a sequence with block table `table`: the block holding it
/// times block_size, plus the offset inside the block.
int kv_slot(std::span<const int> table, int pos, int block_size);

/// Lays a step out for the device. Throws llm::Error when a chunk's table lacks a block for
/// one of its positions.
StepLayout layout_step(const stage03::StepBatch& step, int block_size);

}  // namespace llm::stage04
