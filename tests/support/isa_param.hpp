// Runs a test once per ISA the host supports (DESIGN.md rule 3):
//
//   class MyKernelTest : public sparq::testing::IsaTest {};
//   TEST_P(MyKernelTest, Exact) { ... }           // body runs under GetParam()
//   SPARQ_INSTANTIATE_FOR_ALL_ISAS(MyKernelTest);
//
// The fixture installs a ScopedIsa for the parameter, so every dispatched
// call inside the body runs that ISA's kernels.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "sparq/isa.hpp"

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
