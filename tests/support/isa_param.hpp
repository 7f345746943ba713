// Runs a test once per ISA the host supports (docs/design.md rule 3):
//
//   class MyKernelTest : public sparq::testing::IsaTest {};
//   TEST_P(MyKernelTest, Exact) { ... }           // body runs under GetParam()
//   SPARQ_INSTANTIATE_FOR_ALL_ISAS(MyKernelTest);
//
// The fixture installs a ScopedIsa for the parameter, so every dispatched
// call inside the body runs that ISA's kernels. Failure messages name the
// parameter ("GetParam() ... Which is: avx2") through sparq::PrintTo below.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <ostream>
#include <string>
#include <string_view>

#include "sparq/isa.hpp"

namespace sparq {

// GoogleTest prints a value of a type without operator<< as its raw bytes
// ("4-byte object <01-00 00-00>"), which says nothing about which ISA failed.
// It looks PrintTo up by argument-dependent lookup, so this overload must
// live in Isa's namespace. An out-of-range value (a corrupted Isa) prints
// its number too, since its name would only be "unknown".
inline void PrintTo(Isa isa, std::ostream* os) {
  const std::string_view name = isa_name(isa);
  *os << name;
  if (name == "unknown") *os << '(' << static_cast<int>(isa) << ')';
}

}  // namespace sparq

namespace sparq::testing {

class IsaTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override { guard_ = std::make_unique<ScopedIsa>(GetParam()); }
  void TearDown() override { guard_.reset(); }

 private:
  std::unique_ptr<ScopedIsa> guard_;
};

inline std::string isa_param_name(const ::testing::TestParamInfo<Isa>& info) {
  return std::string(isa_name(info.param));
}

}  // namespace sparq::testing

#define SPARQ_INSTANTIATE_FOR_ALL_ISAS(fixture)                                            \
  INSTANTIATE_TEST_SUITE_P(AllIsas, fixture, ::testing::ValuesIn(sparq::supported_isas()), \
                           sparq::testing::isa_param_name)
