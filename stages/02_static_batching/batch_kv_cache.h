// batch_kv_cache.h: the K/V of a static batch: one stage-01 cache per row, all of the same
// width, filled column by column in lock step. Row r's first pad[r] columns hold padding, which
// no query may see: that is the batch's attention mask.
//
//   column:      0    1    2    3    4    5 ...
//   row 0:     [pad][pad]  K    K    K    K      a query in column 4 sees columns 2..4
//   row 1:       K    K    K    K    K    K      a query in column 4 sees columns 0..4
#pragma once

#include <vector>

#include "common/forward.h"
#include "stages/01_kv_cache/kv_cache.h"

namespace llm::stage02 {

/// The batch's AttentionBackend. forward_tokens hands it rows * n tokens per step, row-major
/// (row 0's n tokens, then row 1's ...): the prompt columns at prefill, one column at decode.
class BatchKvCache : public AttentionBackend {
 public:
  /// `columns` = slots per row (longest prompt + decode steps); pad = each row's pad columns.
  BatchKvCache(const ModelConfig& config, int columns, std::vector<int> pad);

  int rows() const { return static_cast<int>(rows_.size()); }
  int columns_filled() const { return rows_.front().length(); }
  const stage01::KvCache& row(int r) const { return rows_[static_cast<std::size_t>(r)]; }
  int pad(int r) const { return pad_[static_cast<std::size_t>(r)]; }

  void attend(int layer, const float* q, const float* k, const float* v, float* out, int n) override;
  void finish_step(int n) override;

  std::size_t bytes_allocated() const;

 private:
  ModelConfig config_;
  std::vector<stage01::KvCache> rows_;
  std::vector<int> pad_;
};

/// Attention for one row of a left-padded batch. q and out: [n, q_dim] for the row's new columns
/// first .. first + n - 1; k_cache, v_cache: the row's cache [first + n, kv_dim] with this step's
/// columns already appended. Columns before `pad` are padding: a query there is itself padding
/// and gets zeros; a query in column c sees columns pad .. c.
void padded_row_attention(float* out, const float* q, const float* k_cache, const float* v_cache, int n, int first,
                          int pad, const ModelConfig& c);

}  // namespace llm::stage02
