#include "tests/helpers/golden.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "tests/helpers/random_model.h"

namespace llm::test {

std::vector<GoldenSequence> read_golden_logits(const std::string& relative_path) {
  std::ifstream in(repo_path(relative_path));
  if (!in) throw std::runtime_error("cannot read golden file " + relative_path);
  const auto golden = nlohmann::json::parse(in);
  std::vector<GoldenSequence> out;
  for (const auto& seq : golden.at("sequences")) {
    GoldenSequence g;
    g.tokens = seq.at("tokens").get<std::vector<int>>();
    for (const auto& row : seq.at("logits"))
      for (double x : row) g.logits.push_back(static_cast<float>(x));
    out.push_back(std::move(g));
  }
  if (out.empty()) throw std::runtime_error(relative_path + " has no sequences");
  return out;
}

}  // namespace llm::test
