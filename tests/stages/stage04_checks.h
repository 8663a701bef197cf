// stage04_checks.h (tests only): the checks of stage 04 against stage 03, written once and run
// on each backend: the CPU backend in test_stage04 (CI), the CUDA backend in test_stage04_gpu
// (where a GPU is present).
#pragma once

#include <string>
#include <vector>

#include "common/model_weights.h"
#include "stages/03_continuous_batching/continuous_batch_engine.h"
#include "tests/helpers/random_model.h"

namespace llm::test {

/// Stage 03's engine settings for a test: up to `batch` running sequences, `budget` tokens per
/// step, blocks of `block_size` tokens (`num_blocks` 0: as many as the context needs).
stage03::ContinuousBatchConfig batching(int batch, int budget, int block_size, int num_blocks = 0);

/// Teacher-forced comparison of two engines' logits over the same tokens.
struct LogitAgreement {
  int positions = 0;
  int top1_agree = 0;
  double max_rel_err = 0.0;  ///< max over positions of max|a - b| / max|b|
  double mean_kl = 0.0;      ///< KL(b || a) of the softmaxes, averaged over positions
};

/// Stage 04 on `backend` vs stage 03 (fp32 CPU) on `tokens`, logits at every position.
LogitAgreement teacher_forced(const ModelWeights& w, const std::vector<int>& tokens, const std::string& backend);

/// The agreement of `got` with `want`, both [positions, vocab] logits (REQUIRE: finite, same size).
LogitAgreement compare_logits(const std::vector<float>& got, const std::vector<float>& want, int vocab);

/// The gap between a row's top two logits relative to its largest |logit| (a near-tie when below
/// kNearTie).
double top2_gap(const float* row, int vocab);

/// Catch checks: `got`'s tokens equal `ref`'s, or they part at a near-tie of ref's logits (ref run
/// with keep_logits); counts the near-ties.
void check_same_or_near_tie(const RequestResult& got, const RequestResult& ref, int vocab, int& near_ties);

/// Greedy generation from `prompt` on stage 03 and on stage 04 (`backend`): the index of the
/// first token where they differ (-1 when all max_new agree) and stage 03's gap between its top
/// two logits there, relative to its largest |logit| (a near-tie when small).
struct GreedyDivergence {
  int first_diff = -1;
  double gap_at_diff = 0.0;
};
GreedyDivergence greedy_divergence(const ModelWeights& w, const std::vector<int>& prompt, int max_new,
                                   const std::string& backend);

/// Runs the default model's and the random shapes' checks (Catch assertions): teacher-forced
/// top-1 agreement >= 99% and relative error <= kFp16LogitTol, greedy agreement up to a near-tie,
/// and every request's solo output under staggered arrivals and preemption.
void check_stage04_against_stage03(const std::string& backend, bool default_model, bool random_shapes);

/// The same checks on random models of the given shapes (stop token 2): for the CUDA backend,
/// shapes its kernels take (head_dim 32, 64 or 128, widths multiples of 8), which the awkward
/// shapes are not.
void check_stage04_on_shapes(const std::string& backend, const std::vector<RandomModelSpec>& specs);

/// Tolerance of teacher-forced logits (fp16 weights and activations against fp32), relative to
/// the largest |logit| of the position.
inline constexpr double kFp16LogitTol = 3e-2;
/// A gap between the top two logits below this share of the largest |logit| is a near-tie,
/// where fp16 rounding may legitimately pick the other token.
inline constexpr double kNearTie = 2e-2;

}  // namespace llm::test
