// What a call throws, as text, for tests of the library's error messages
// (docs/design.md: bad input gets sparq::Error naming the argument, the
// value and what was expected).
//
//   EXPECT_ERROR(nn::load_weights(m, path), "tensor '0.weight'");
//
// passes when the call throws sparq::Error whose message contains the
// needle; another exception type, or none, fails with the message seen.
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <string>

#include "sparq/error.hpp"

namespace sparq::testing {

/// The message of the sparq::Error that f throws; "NOT sparq::Error: ..."
/// for any other exception and "no exception" when f returns, so that a
/// search for the expected text in either fails and prints what happened.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const sparq::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("NOT sparq::Error: ") + e.what();
  }
  return "no exception";
}

}  // namespace sparq::testing

#define EXPECT_ERROR(call, needle)                                               \
  do {                                                                           \
    const std::string what_ = ::sparq::testing::error_of([&] { (void)(call); }); \
    EXPECT_NE(what_.find(needle), std::string::npos) << "message: " << what_;    \
    EXPECT_EQ(what_.find("NOT sparq::Error"), std::string::npos) << what_;       \
  } while (0)
