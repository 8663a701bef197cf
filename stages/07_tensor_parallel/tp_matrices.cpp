#include "tp_matrices.h"

#include <algorithm>
#include <numeric>
#include <string>

#include "common/error.h"

namespace llm::stage07 {

TpMatrices::TpMatrices(std::unique_ptr<stage04::CpuMatrices> shard, std::unique_ptr<stage04::CpuMatrices> classifier,
                       int dim, int rank, std::vector<int> vocab_counts, AllReduce all_reduce, Gather gather,
                       std::function<double()> clock)
    : shard_(std::move(shard)),
      classifier_(std::move(classifier)),
      dim_(dim),
      rank_(rank),
      vocab_counts_(std::move(vocab_counts)),
      all_reduce_(std::move(all_reduce)),
      gather_(std::move(gather)),
      clock_(std::move(clock)) {
  if (rank_ < 0 || rank_ >= static_cast<int>(vocab_counts_.size()))
    throw Error("tensor parallel: rank " + std::to_string(rank_) + " of " + std::to_string(vocab_counts_.size()));
  if (vocab_counts_.size() > 1 && !gather_)
    throw Error("tensor parallel: " + std::to_string(vocab_counts_.size()) + " ranks and no gather for the logits");
}

void TpMatrices::matmul(float* y, const float* x, int n, int layer, Matrix m) {
  shard_->matmul(y, x, n, layer, m);
  // BEGIN EXERCISE(tp-all-reduce): sum the partial products over the ranks where they are partial
  // Wo and W2 are row-parallel: y is this rank's partial sum of the residual update.
  if (m == Matrix::wo || m == Matrix::w2) {
    CommTime::Part& part = comm_.by_rows[n];
    if (barrier_) {
      const double w0 = clock_();
      barrier_();
      const double w = clock_() - w0;
      comm_.wait_seconds += w, part.wait_seconds += w;
    }
    const double t0 = clock_();
    all_reduce_(y, static_cast<std::size_t>(n) * static_cast<std::size_t>(dim_));
    const double t = clock_() - t0;
    comm_.seconds += t, part.seconds += t;
    ++comm_.calls, ++part.calls;
  }
  // END EXERCISE
}

void TpMatrices::classify(float* y, const float* x, int n) {
  if (vocab_counts_.size() == 1) return classifier_->classify(y, x, n);
  // Each rank: its vocabulary rows' logits [n, v_r]; rank 0 gathers them rank after rank and
  // puts rank r's block at columns [begin_r, begin_r + v_r) of every row of y [n, vocab].
  const auto rows = static_cast<std::size_t>(n);
  const std::size_t vocab = std::accumulate(vocab_counts_.begin(), vocab_counts_.end(), std::size_t{0});
  local_.resize(rows * static_cast<std::size_t>(vocab_counts_[static_cast<std::size_t>(rank_)]));
  classifier_->classify(local_.data(), x, n);
  std::vector<int> counts;
  for (int v : vocab_counts_) counts.push_back(n * v);
  if (rank_ == 0) all_.resize(rows * vocab);
  const double t0 = clock_();
  gather_(local_.data(), all_.data(), counts);
  comm_.gather_seconds += clock_() - t0;
  ++comm_.gathers;
  if (rank_ != 0) return;
  std::size_t at = 0, begin = 0;
  for (int v : vocab_counts_) {
    const auto vr = static_cast<std::size_t>(v);
    for (std::size_t i = 0; i < rows; ++i) std::copy_n(&all_[at + i * vr], vr, &y[i * vocab + begin]);
    at += rows * vr;
    begin += vr;
  }
}

}  // namespace llm::stage07
