// exercise.h: the run-time switch of a switchable student tree.
//
// `scripts/make_student_tree OUT --switchable` keeps every reference solution and puts
//
//     if (llm::exercise_blanked("NAME")) throw llm::NotImplemented("NAME");
//
// at the start of each exercise region, so that one build can behave as the student tree of any
// set of exercises: scripts/check_student_tree builds it once and runs the tests with each
// exercise blanked alone. The checkout's files never call this; a build configured with
// -DLLM_EXERCISE_SWITCH=ON compiles those copies instead of them (cmake/exercise_switch.cmake).
//
// Environment (read once per process, inherited by the processes a test starts):
//   LLM_BLANK=a,b,c          the exercises that behave as blanked; "all" blanks every one
//   LLM_EXERCISE_TRACE=FILE  append "NAME\n" to FILE the first time this process enters the
//                            region of NAME (blanked or not): which tests can depend on NAME
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

namespace llm {

/// True when exercise `name` is listed in LLM_BLANK (or LLM_BLANK is "all"). Thread-safe: regions
/// run on worker threads too. Records the first entry of each region when LLM_EXERCISE_TRACE is set.
inline bool exercise_blanked(std::string_view name) {
  struct Switch {
    std::set<std::string, std::less<>> blanked;
    bool all = false;
    const char* trace = nullptr;
    std::mutex mutex;
    std::set<std::string, std::less<>> reached;
    Switch() {
      const char* env = std::getenv("LLM_BLANK");
      const std::string list = env ? env : "";
      std::size_t at = 0;
      while (at <= list.size()) {
        const std::size_t comma = std::min(list.find(',', at), list.size());
        if (comma > at) blanked.insert(list.substr(at, comma - at));
        at = comma + 1;
      }
      all = blanked.count("all") > 0;
      trace = std::getenv("LLM_EXERCISE_TRACE");
    }
  };
  static Switch s;  // initialised once, thread-safely (C++11 statics)
  if (s.trace != nullptr) {
    const std::lock_guard<std::mutex> lock(s.mutex);
    if (s.reached.find(name) == s.reached.end()) {
      s.reached.emplace(name);
      // Written at once, not at exit: a test that aborts still leaves its record.
      if (std::FILE* f = std::fopen(s.trace, "a")) {
        std::fprintf(f, "%.*s\n", static_cast<int>(name.size()), name.data());
        std::fclose(f);
      }
    }
  }
  return s.all || s.blanked.find(name) != s.blanked.end();
}

}  // namespace llm
