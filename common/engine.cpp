#include "common/engine.h"

#include <algorithm>
#include <chrono>
#include <thread>

namespace llm {

RequestResult result_for(const Request& request) {
  RequestResult out;
  out.id = request.id;
  out.prompt_tokens = static_cast<int>(request.prompt.size());
  out.arrival_s = request.arrival_s;
  return out;
}

bool is_stop(std::span<const int> stop_ids, int token) {
  return std::find(stop_ids.begin(), stop_ids.end(), token) != stop_ids.end();
}

void wait_until(const Timer& clock, double t) {
  while (clock.seconds() < t) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

}  // namespace llm
