#include "batch_kv_cache.h"

#include <algorithm>
#include <string>

#include "common/error.h"
#include "kernels/cpu/parallel.h"
#include "stages/01_kv_cache/cached_attention.h"

namespace llm::stage02 {

BatchKvCache::BatchKvCache(const ModelConfig& config, int columns, std::vector<int> pad)
    : config_(config), pad_(std::move(pad)) {
  if (pad_.empty()) throw Error("static batch: no rows");
  rows_.reserve(pad_.size());
  for (std::size_t r = 0; r < pad_.size(); ++r) rows_.emplace_back(config, columns);
}

std::size_t BatchKvCache::bytes_allocated() const {
  std::size_t b = 0;
  for (const auto& r : rows_) b += r.bytes_allocated();
  return b;
}

void BatchKvCache::attend(int layer, const float* q, const float* k, const float* v, float* out, int n) {
  const int per_row = n / rows();
  if (per_row * rows() != n) throw Error("static batch: " + std::to_string(n) + " tokens do not split into rows");
  const auto qd = static_cast<std::size_t>(config_.q_dim()), kvd = static_cast<std::size_t>(config_.kv_dim());
  // Rows are independent: share them out among the threads, a row's attention then runs on the
  // thread that took it (a nested parallel_for runs inline). One row costs about
  // 2 * per_row * columns * q_dim multiply-adds; with one row, the attention inside shares its heads.
  const int B = rows();
  const std::int64_t per_row_work = 2 * std::int64_t{per_row} * (rows_[0].length() + per_row) * config_.q_dim();
  cpu::parallel_for(B, cpu::grain_for(per_row_work, cpu::kMinChunkWork), [&](std::int64_t r0, std::int64_t r1) {
    for (auto r = static_cast<std::size_t>(r0); r < static_cast<std::size_t>(r1); ++r) {
      stage01::KvCache& cache = rows_[r];
      const std::size_t first_row = r * static_cast<std::size_t>(per_row);
      cache.append(layer, k + first_row * kvd, v + first_row * kvd, per_row);
      padded_row_attention(out + first_row * qd, q + first_row * qd, cache.keys(layer), cache.values(layer), per_row,
                           cache.length(), pad_[r], config_);
    }
  });
}

void BatchKvCache::finish_step(int n) {
  for (auto& r : rows_) r.finish_step(n / rows());
}

void padded_row_attention(float* out, const float* q, const float* k_cache, const float* v_cache, int n, int first,
                          int pad, const ModelConfig& c) {
  const auto qd = static_cast<std::size_t>(c.q_dim()), kvd = static_cast<std::size_t>(c.kv_dim());
  // BEGIN EXERCISE(padding-mask): pad queries get zeros; real queries see only the row's real keys
  // New columns first .. first + n - 1; those left of `pad` are padding.
  const int skip = std::clamp(pad - first, 0, n);
  std::fill(out, out + static_cast<std::size_t>(skip) * qd, 0.0f);
  if (skip == n) return;
  // Seen from column `pad`, the row is an ordinary sequence: its keys start at pad, and the first
  // real new query sits at position first + skip - pad of it.
  stage01::cached_attention(out + static_cast<std::size_t>(skip) * qd, q + static_cast<std::size_t>(skip) * qd,
                            k_cache + static_cast<std::size_t>(pad) * kvd,
                            v_cache + static_cast<std::size_t>(pad) * kvd, n - skip, first + skip - pad, c.n_heads,
                            c.n_kv_heads, c.head_dim);
  // END EXERCISE
}

}  // namespace llm::stage02
