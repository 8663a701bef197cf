#include "common/workload.h"

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace llm {

std::vector<WorkloadItem> read_workload(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open workload file");
  std::vector<WorkloadItem> items;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no) + ": ";
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(where + "not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object()) throw Error(where + "expected a JSON object per line");
    WorkloadItem it;
    if (!j.contains("prompt") || !j["prompt"].is_string()) throw Error(where + "\"prompt\" is missing or not a string");
    it.prompt = j["prompt"].get<std::string>();
    if (it.prompt.empty()) throw Error(where + "\"prompt\" is empty");
    if (!j.contains("max_new_tokens") || !j["max_new_tokens"].is_number_integer()) {
      throw Error(where + "\"max_new_tokens\" is missing or not an integer");
    }
    const auto n = j["max_new_tokens"].get<long long>();
    if (n <= 0 || n > (1 << 24))
      throw Error(where + "\"max_new_tokens\" is " + std::to_string(n) + " (must be at least 1)");
    it.max_new_tokens = static_cast<int>(n);
    if (j.contains("arrival_s")) {
      if (!j["arrival_s"].is_number() || j["arrival_s"].get<double>() < 0.0)
        throw Error(where + "\"arrival_s\" must be a number >= 0");
      it.arrival_s = j["arrival_s"].get<double>();
    }
    if (j.contains("id") && j["id"].is_string()) {
      it.id = j["id"].get<std::string>();
    } else {
      char id[32];  // "r<index>"; snprintf sidesteps a GCC 12 -Wrestrict false positive on string +
      std::snprintf(id, sizeof(id), "r%zu", items.size());
      it.id = id;
    }
    items.push_back(std::move(it));
  }
  if (items.empty()) throw Error(path + ": the workload has no requests");
  return items;
}

}  // namespace llm
