// workload.h: a file of requests, one JSON object per line (JSONL):
//   {"id": "r0", "prompt": "Once upon a time", "max_new_tokens": 32, "arrival_s": 0.0}
// id and arrival_s are optional. A bad line is an llm::Error naming the file, line and reason.
#pragma once

#include <string>
#include <vector>

namespace llm {

/// One request as written in a workload file (text, not yet tokenized).
struct WorkloadItem {
  std::string id;
  std::string prompt;
  int max_new_tokens = 0;
  double arrival_s = 0.0;  ///< seconds after the run starts
};

/// Reads a JSONL workload. Blank lines are skipped.
std::vector<WorkloadItem> read_workload(const std::string& path);

}  // namespace llm
