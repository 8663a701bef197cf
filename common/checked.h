// checked.h: arithmetic on counts that come from the user (flags, files, requests).
//
// A count read from outside is only a promise. Before it meets +, - or *, it goes through one of
// these: the result is exact or the call throws llm::Error naming what was being computed and
// the limit it crossed, e.g. "--block-size 2147483647 + context 512: exceeds 2147483647".
// They are built on the compiler's __builtin_*_overflow, so they cost one flag test each.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include "common/error.h"

namespace llm {

namespace checked_detail {

template <typename T>
std::string to_text(T v) {
  if constexpr (std::is_signed_v<T>) {
    return std::to_string(static_cast<long long>(v));
  } else {
    return std::to_string(static_cast<unsigned long long>(v));
  }
}

/// below: the exact result is under T's minimum (a sum of negatives, a difference); else above its maximum.
template <typename T>
[[noreturn]] void overflow(const std::string& what, const char* op, T a, T b, bool below) {
  throw Error(what + ": " + to_text(a) + " " + op + " " + to_text(b) +
              (below ? " is below " + to_text(std::numeric_limits<T>::min())
                     : " exceeds " + to_text(std::numeric_limits<T>::max())));
}

}  // namespace checked_detail

/// a + b, or llm::Error("<what>: a + b exceeds <max of T>"). T is any integer type.
template <typename T>
T checked_add(T a, T b, const std::string& what) {
  static_assert(std::is_integral_v<T>);
  T out;
  if (__builtin_add_overflow(a, b, &out)) checked_detail::overflow(what, "+", a, b, b < T{0});
  return out;
}

/// a - b, or llm::Error. For unsigned T a result below 0 is an overflow too.
template <typename T>
T checked_sub(T a, T b, const std::string& what) {
  static_assert(std::is_integral_v<T>);
  T out;
  if (__builtin_sub_overflow(a, b, &out)) checked_detail::overflow(what, "-", a, b, b > T{0});
  return out;
}

/// a * b, or llm::Error("<what>: a * b exceeds <max of T>").
template <typename T>
T checked_mul(T a, T b, const std::string& what) {
  static_assert(std::is_integral_v<T>);
  T out;
  if (__builtin_mul_overflow(a, b, &out)) checked_detail::overflow(what, "*", a, b, (a < T{0}) != (b < T{0}));
  return out;
}

/// v converted to To exactly, or llm::Error("<what>: v does not fit in lo..hi"). Use it where an
/// int64 or size_t count from a file or a sum becomes an int (a token count, a block count).
template <typename To, typename From>
To narrow(From v, const std::string& what) {
  static_assert(std::is_integral_v<To> && std::is_integral_v<From>);
  To out;
  // __builtin_add_overflow with 0 converts with a range check for any pair of integer types.
  if (__builtin_add_overflow(v, From{0}, &out)) {
    throw Error(what + ": " + checked_detail::to_text(v) + " does not fit in " +
                checked_detail::to_text(std::numeric_limits<To>::min()) + ".." +
                checked_detail::to_text(std::numeric_limits<To>::max()));
  }
  return out;
}

/// ceil(a / b) for a >= 0, b > 0, without the overflow of (a + b - 1) / b when a or b is near
/// the top of T (a --block-size of 2147483647, say).
template <typename T>
constexpr T ceil_div(T a, T b) {
  static_assert(std::is_integral_v<T>);
  return a / b + (a % b != 0 ? 1 : 0);
}

/// Checks a flag's value against its documented range [lo, hi]; throws
/// llm::Error("--block-size 2147483647: must be between 1 and 4096").
template <typename T>
void require_in_range(const std::string& flag, T value, T lo, T hi) {
  static_assert(std::is_integral_v<T>);
  if (value < lo || value > hi) {
    throw Error(flag + " " + checked_detail::to_text(value) + ": must be between " + checked_detail::to_text(lo) +
                " and " + checked_detail::to_text(hi));
  }
}

}  // namespace llm
