// random_requests.h (tests only): seeded random requests for the batching stages' checks.
#pragma once

#include <cstdint>
#include <vector>

#include "common/engine.h"

namespace llm::test {

/// `count` requests with ids r0, r1, ...: prompts of 1 .. context/3 random tokens below `vocab`,
/// max_new_tokens of 1 .. context/2, every third one sampled (temperature 0.9, its own seed),
/// the rest greedy. All arrive at t = 0.
std::vector<Request> random_requests(int vocab, int context, std::uint64_t seed, int count);

}  // namespace llm::test
