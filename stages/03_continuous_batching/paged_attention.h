// paged_attention.h: attention whose keys and values are read through a block table. A
// sequence's token at position p lives in block table[p / block_size], slot p % block_size, so
// its K/V may be scattered over the pool in any order:
//
//   block table of a sequence:  [ 7 | 2 | 9 ]          block_size 4, 10 tokens
//   position:                     0-3  4-7  8-9
//   pool:   ... [2: tokens 4-7] ... [7: tokens 0-3] [8: another seq] [9: tokens 8-9, 2 free] ...
//
// PagedKvCache is the stage's AttentionBackend: this step's rows belong to several sequences
// (some prompt chunks, some single decode tokens), each with its own table and position.
#pragma once

#include <span>
#include <vector>

#include "block_pool.h"
#include "common/forward.h"
#include "common/model_config.h"

namespace llm::stage03 {

/// One query token attends over its sequence's keys at positions 0 .. pos, read from `pool`
/// through `table` for layer `layer`. q and out: [n_heads * head_dim]; scores: room for
/// n_heads * (pos + 1) floats. Grouped-query attention as in every stage: query head h reads KV head h / (n_heads /
/// n_kv_heads).
void paged_attention(float* out, const float* q, int pos, const BlockPool& pool, std::span<const int> table, int layer,
                     const ModelConfig& c, float* scores);

/// The rows of this step that belong to one sequence: `count` consecutive rows at positions
/// start .. start + count - 1. The table must already hold a block for each of them.
struct StepRows {
  std::span<const int> table;
  int start = 0;
  int count = 0;
};

/// The AttentionBackend of one step over a paged pool.
class PagedKvCache : public AttentionBackend {
 public:
  PagedKvCache(BlockPool& pool, const ModelConfig& config) : pool_(pool), config_(config) {}
  /// This step's sequences, in the order their rows appear in the forward's token list.
  void set_step(std::vector<StepRows> rows);
  /// Writes each row's K/V into its slot (table[pos / block_size], pos % block_size), then
  /// attends every row over its own sequence.
  void attend(int layer, const float* q, const float* k, const float* v, float* out, int n) override;
  /// Nothing to do: the scheduler records which positions are now computed (Scheduler::commit).
  void finish_step(int) override {}

 private:
  BlockPool& pool_;
  ModelConfig config_;
  std::vector<StepRows> seqs_;
  std::vector<int> row_seq_, row_pos_;  // per row of the step: which sequence, which position
};

}  // namespace llm::stage03
