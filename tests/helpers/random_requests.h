// random_requests.h (tests only): the batching stages' requests: seeded random ones, and the
// default model's six.
#pragma once

#include <cstdint>
#include <vector>

#include "common/engine.h"
#include "common/model_weights.h"

namespace llm::test {

/// `count` requests with ids r0, r1, ...: prompts of 1 .. context/3 random tokens below `vocab`,
/// max_new_tokens of 1 .. context/2, every third one sampled (temperature 0.9, its own seed),
/// the rest greedy. All arrive at t = 0.
std::vector<Request> random_requests(int vocab, int context, std::uint64_t seed, int count);

/// Six requests "a".."f" of English prompts for the committed default model (its tokenizer),
/// 1 to 40 new tokens, "e" sampled (temperature 0.8, top-k 20, top-p 0.95, seed 3), the rest
/// greedy. All arrive at t = 0.
std::vector<Request> default_model_requests(const Model& m);

}  // namespace llm::test
