// error.h: the two exception types every part of the engine throws.
//
// llm::Error is bad input (a file, a flag, a prompt): its message names the file or flag, the
// field and the bad value. The executables catch it, print "error: <message>" and exit with
// code 2. llm::NotImplemented marks an exercise stub in a student tree.
#pragma once

#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>

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

/// `text` as it may appear inside an error message: control bytes and bytes that are not
/// printable ASCII become `\xNN`, so a value quoted from a file or a flag can neither break the
/// message's one line nor print ill-formed UTF-8.
inline std::string printable(std::string_view text) {
  std::string out;
  for (const unsigned char ch : text) {
    if (ch >= 0x20 && ch < 0x7F) {
      out.push_back(static_cast<char>(ch));
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02X", ch);
      out += hex;
    }
  }
  return out;
}

/// Exit code of every executable when the input (file, flag, prompt) is bad.
inline constexpr int kExitBadInput = 2;

}  // namespace llm
