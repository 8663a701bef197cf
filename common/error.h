// error.h: the two exception types every part of the engine throws.
//
// llm::Error is bad input (a file, a flag, a prompt): its message names the file or flag, the
// field and the bad value. The executables catch it, print "error: <message>" and exit with
// code 2. llm::NotImplemented marks an exercise stub in a student tree.
#pragma once

#include <stdexcept>
#include <string>

namespace llm {

/// Bad input. The message says which file/flag, which field, and the offending value.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/// Thrown by exercise stubs in a generated student tree: "exercise <name> is not implemented".
class NotImplemented : public std::logic_error {
 public:
  explicit NotImplemented(const std::string& exercise)
      : std::logic_error("exercise '" + exercise + "' is not implemented yet"), name_(exercise) {}
  /// The exercise's name as written in its BEGIN EXERCISE(name) marker.
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

/// Exit code of every executable when the input (file, flag, prompt) is bad.
inline constexpr int kExitBadInput = 2;

}  // namespace llm
