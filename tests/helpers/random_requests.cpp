#include "tests/helpers/random_requests.h"

#include <random>
#include <string>

namespace llm::test {

std::vector<Request> random_requests(int vocab, int context, std::uint64_t seed, int count) {
  std::mt19937_64 rng(seed);
  auto below = [&](int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); };
  std::vector<Request> reqs;
  for (int i = 0; i < count; ++i) {
    Request r;
    r.id = std::to_string(i);
    r.id.insert(0, 1, 'r');  // (not "r" + ...: GCC 12 warns falsely on that, -Wrestrict)
    const int len = 1 + below(context / 3);
    for (int t = 0; t < len; ++t) r.prompt.push_back(below(vocab));
    r.max_new_tokens = 1 + below(context / 2);
    if (i % 3 == 2) r.sampling = {0.9f, 0, 1.0f, 7 + static_cast<std::uint64_t>(i)};
    reqs.push_back(r);
  }
  return reqs;
}

}  // namespace llm::test
