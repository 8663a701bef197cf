// run_main.h: how every executable ends. The body's exceptions become exactly one line on stderr
// and the exit code the tests and docs rely on:
//   llm::Error           "error: <message>"                                   2 (bad input)
//   llm::NotImplemented  "error: exercise 'NAME' is not implemented yet ..."  3 (a student tree)
//   std::bad_alloc       "error: out of memory (...)"                         1
//   anything else        "internal error: <what>"                             1
#pragma once

#include <cstdio>
#include <exception>
#include <new>

#include "common/error.h"

namespace llm {

/// Returns body()'s exit code, or the code above for what it threw.
template <class Body>
int run_main(Body&& body) {
  try {
    return body();
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitBadInput;
  } catch (const NotImplemented& e) {
    std::fprintf(stderr, "error: %s (this is a student tree: fill in the exercise)\n", e.what());
    return 3;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory (is the model too large for this machine?)\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 1;
  }
}

}  // namespace llm
