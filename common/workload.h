// workload.h: a file of requests, one JSON object per line (JSONL):
//   {"id": "r0", "prompt": "Once upon a time", "max_new_tokens": 32, "arrival_s": 0.0}
// id and arrival_s are optional; no other field is allowed (a misspelt one would be ignored).
// A bad line is an llm::Error naming the file, the line, the field and the value.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace llm {

/// What a workload may ask for. They bound the work and the waiting one file can cause.
struct WorkloadLimits {
  static constexpr double max_arrival_s = 86400.0;           ///< arrival_s: at most one day
  static constexpr long long max_new_tokens = 1 << 20;       ///< the --max-new-tokens limit too
  static constexpr std::size_t max_line_bytes = 4u << 20;    ///< one request's line: 4 MiB
  static constexpr std::size_t max_file_bytes = 256u << 20;  ///< the whole file: 256 MiB
  static constexpr std::size_t max_id_bytes = 256;           ///< an id is a name, not a payload
};

/// One request as written in a workload file (text, not yet tokenized).
struct WorkloadItem {
  std::string id;  ///< unique in the file; "r<index>" when not given
  std::string prompt;
  int max_new_tokens = 0;  ///< 1 .. WorkloadLimits::max_new_tokens
  double arrival_s = 0.0;  ///< seconds after the run starts, 0 .. WorkloadLimits::max_arrival_s
  int line = 0;            ///< 1-based line in the file, for later messages
};

/// Reads a JSONL workload file (not a directory, at most max_file_bytes). Blank lines are skipped.
std::vector<WorkloadItem> read_workload(const std::string& path);

/// Parses JSONL text; `name` stands for the file in messages ("name:3: ..."). Accepts any bytes.
std::vector<WorkloadItem> parse_workload(std::string_view text, const std::string& name);

}  // namespace llm
