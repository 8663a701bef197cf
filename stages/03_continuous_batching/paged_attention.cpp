#include "paged_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "common/error.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/parallel.h"

namespace llm::stage03 {

void paged_attention(float* out, const float* q, int pos, const BlockPool& pool, std::span<const int> table, int layer,
                     const ModelConfig& c, float* scores) {
  const int hd = c.head_dim, group = c.n_heads / c.n_kv_heads, bs = pool.block_size();
  const auto kvd = static_cast<std::size_t>(c.kv_dim()), hdz = static_cast<std::size_t>(hd);
  const auto n = static_cast<std::size_t>(pos) + 1;  // keys 0 .. pos
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // BEGIN EXERCISE(block-table): find each key and value through the block table, then softmax and sum as before
  constexpr std::size_t kAhead = 6;  // rows requested ahead of use (cpu::prefetch)
  // Key j (every KV head) sits at slot j % bs of block table[j / bs]. Key by key, all heads at
  // once: each row is read once, rows in order. scores: [n_heads, n].
  const auto bsz = static_cast<std::size_t>(bs);
  auto key = [&](std::size_t j) { return pool.keys(table[j / bsz], layer) + j % bsz * kvd; };
  auto value = [&](std::size_t j) { return pool.values(table[j / bsz], layer) + j % bsz * kvd; };
  for (std::size_t j = 0; j < n; ++j) {
    if (j + kAhead < n) cpu::prefetch(key(j + kAhead), kvd);
    const float* kj = key(j);
    for (int h = 0; h < c.n_heads; ++h)
      scores[static_cast<std::size_t>(h) * n + j] =
          cpu::dot(q + h * hdz, kj + static_cast<std::size_t>(h / group) * hdz, hd) * scale;
  }
  for (int h = 0; h < c.n_heads; ++h) cpu::softmax(scores + static_cast<std::size_t>(h) * n, static_cast<int>(n));
  std::fill(out, out + static_cast<std::size_t>(c.n_heads) * hdz, 0.0f);
  for (std::size_t j = 0; j < n; ++j) {
    if (j + kAhead < n) cpu::prefetch(value(j + kAhead), kvd);
    const float* vj = value(j);
    for (int h = 0; h < c.n_heads; ++h) {
      const float p = scores[static_cast<std::size_t>(h) * n + j];
      const float* vh = vj + static_cast<std::size_t>(h / group) * hdz;
      float* oh = out + static_cast<std::size_t>(h) * hdz;
      for (int d = 0; d < hd; ++d) oh[d] += p * vh[d];
    }
  }
  // END EXERCISE
}

void PagedKvCache::set_step(std::vector<StepRows> rows) {
  seqs_ = std::move(rows);
  row_seq_.clear();
  row_pos_.clear();
  const int bs = pool_.block_size();
  for (std::size_t s = 0; s < seqs_.size(); ++s) {
    const StepRows& r = seqs_[s];
    const int last = r.start + r.count - 1;
    if (r.count < 1 || r.start < 0 || static_cast<std::size_t>(last / bs) >= r.table.size()) {
      throw Error("paged attention: sequence " + std::to_string(s) + " has " + std::to_string(r.table.size()) +
                  " blocks, too few for position " + std::to_string(last));
    }
    for (int i = 0; i < r.count; ++i) {
      row_seq_.push_back(static_cast<int>(s));
      row_pos_.push_back(r.start + i);
    }
  }
}

void PagedKvCache::attend(int layer, const float* q, const float* k, const float* v, float* out, int n) {
  if (n != static_cast<int>(row_seq_.size()))
    throw Error("paged attention: the step has " + std::to_string(row_seq_.size()) + " rows, the forward " +
                std::to_string(n));
  const int bs = pool_.block_size();
  const auto qd = static_cast<std::size_t>(config_.q_dim()), kvd = static_cast<std::size_t>(config_.kv_dim());
  // First every row's K/V goes to its slot, so that a prompt chunk's later rows see its earlier ones.
  for (int r = 0; r < n; ++r) {
    const StepRows& s = seqs_[static_cast<std::size_t>(row_seq_[static_cast<std::size_t>(r)])];
    const int pos = row_pos_[static_cast<std::size_t>(r)];
    const int block = s.table[static_cast<std::size_t>(pos / bs)];
    const std::size_t slot = static_cast<std::size_t>(pos % bs) * kvd;
    std::memcpy(pool_.keys(block, layer) + slot, k + static_cast<std::size_t>(r) * kvd, sizeof(float) * kvd);
    std::memcpy(pool_.values(block, layer) + slot, v + static_cast<std::size_t>(r) * kvd, sizeof(float) * kvd);
  }
  // Every row is independent: one query token of one sequence.
  int longest = 0;
  long work = 0;  // query-key pairs
  for (int p : row_pos_) {
    longest = std::max(longest, p + 1);
    work += p + 1;
  }
  // Share the rows out among the threads; a few short rows are not worth handing over (parallel_for
  // keeps chunks of at least kMinChunkWork multiply-adds on one thread).
  const std::int64_t per_row = 2 * (work / n + 1) * config_.n_heads * config_.head_dim;
  cpu::parallel_for(n, cpu::grain_for(per_row, cpu::kMinChunkWork), [&](std::int64_t r0, std::int64_t r1) {
    std::vector<float> scores(static_cast<std::size_t>(longest) * static_cast<std::size_t>(config_.n_heads));
    for (auto i = static_cast<std::size_t>(r0); i < static_cast<std::size_t>(r1); ++i) {
      paged_attention(out + i * qd, q + i * qd, row_pos_[i], pool_, seqs_[static_cast<std::size_t>(row_seq_[i])].table,
                      layer, config_, scores.data());
    }
  });
}

}  // namespace llm::stage03
