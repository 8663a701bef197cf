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

std::vector<Request> default_model_requests(const Model& m) {
  const char* prompts[] = {
      "And God said", "It is a truth universally acknowledged, that a single man",
      "Mr.",          "The LORD is my shepherd; I shall not want. He maketh me to lie down",
      "Emma",         "In the beginning God created the heaven and the earth. And the earth was without form"};
  const int max_new[] = {30, 5, 17, 1, 24, 40};
  std::vector<Request> reqs;
  for (std::size_t i = 0; i < 6; ++i) {
    Request r;
    r.id = std::string(1, static_cast<char>('a' + i));
    r.prompt = m.tokenizer->encode_prompt(prompts[i]);
    r.max_new_tokens = max_new[i];
    if (i == 4) r.sampling = {0.8f, 20, 0.95f, 3};
    reqs.push_back(r);
  }
  return reqs;
}

}  // namespace llm::test
