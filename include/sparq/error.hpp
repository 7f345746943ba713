// sparq::Error and the helpers that build its messages.
//
// Every public entry point validates its arguments and throws sparq::Error
// with a message that names the argument, the value it got and what was
// expected, e.g.
//   "compute_qparams: min (3.5) must be <= max (1.25)"
// Kernels (src/kernels/) never throw: they are noexcept and only assert in
// debug builds; all validation happens above them.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace sparq {

/// The one exception type sparq throws for bad input or an unusable state.
/// Derives from std::invalid_argument so existing handlers for
/// std::logic_error / std::exception keep working.
class Error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

namespace detail {

/// Throws sparq::Error with a fmt-formatted message.
template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace detail
}  // namespace sparq
