// libFuzzer entry point: any byte string given to the JSONL workload reader must either parse
// into requests that keep the reader's promises (ids unique, counts and arrivals in range) or
// throw llm::Error: no other exception, no crash, no sanitizer report.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string_view>

#include "common/error.h"
#include "common/workload.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto items = llm::parse_workload(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.jsonl");
    std::set<std::string> ids;
    for (const auto& it : items) {
      const bool ok = !it.prompt.empty() && it.max_new_tokens >= 1 &&
                      it.max_new_tokens <= llm::WorkloadLimits::max_new_tokens && std::isfinite(it.arrival_s) &&
                      it.arrival_s >= 0.0 && it.arrival_s <= llm::WorkloadLimits::max_arrival_s &&
                      ids.insert(it.id).second;
      if (!ok) std::abort();  // the reader accepted what it promises to refuse
    }
  } catch (const llm::Error&) {
  }
  return 0;
}
