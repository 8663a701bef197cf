// reference_forward.h (tests only): a second forward pass built from kernels/cpu (Eigen) ops,
// independent of stage 00's hand-written loops. Stage tests compare against it on random
// models of awkward shapes; the committed golden files (numpy) check both.
#pragma once

#include <vector>

#include "common/model_weights.h"

namespace llm::test {

/// Teacher-forced logits [n, vocab] for `tokens`.
std::vector<float> reference_logits(const ModelWeights& w, const std::vector<int>& tokens);

}  // namespace llm::test
