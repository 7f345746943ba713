// GoogleTest output for Isa parameters (tests/support/isa_param.hpp): a
// failing kernel test must say which ISA it ran on, by name, both in the
// test's name and in the values its assertions print.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <string>

#include "sparq/isa.hpp"
#include "support/isa_param.hpp"

namespace sparq {
namespace {

constexpr Isa kAllIsas[] = {Isa::scalar, Isa::avx2,    Isa::avxvnni, Isa::avx512vnni,
                            Isa::neon,   Isa::neondot, Isa::neoni8mm};

TEST(IsaPrint, PrintToStringGivesTheName) {
  for (Isa isa : kAllIsas) {
    EXPECT_EQ(::testing::PrintToString(isa), std::string(isa_name(isa)));
  }
  EXPECT_EQ(::testing::PrintToString(Isa::avx2), "avx2");
}

TEST(IsaPrint, OutOfRangeValueShowsItsNumber) {
  EXPECT_EQ(::testing::PrintToString(static_cast<Isa>(42)), "unknown(42)");
}

// Variables, not enumerators, in the failing assertion: gtest prints
// "Which is: <value>" only when the value's text differs from the
// expression's, so `EXPECT_EQ(Isa::avx2, ...)` would contain "avx2" even if
// the value were printed as raw bytes.
TEST(IsaPrint, FailureMessageNamesTheIsa) {
  const Isa expected = Isa::avx512vnni;
  const Isa actual = Isa::neondot;
  EXPECT_NONFATAL_FAILURE(EXPECT_EQ(expected, actual), "Which is: avx512vnni");
  EXPECT_NONFATAL_FAILURE(EXPECT_EQ(expected, actual), "Which is: neondot");
}

TEST(IsaPrint, ParamNameIsTheIsaName) {
  for (Isa isa : kAllIsas) {
    const ::testing::TestParamInfo<Isa> info(isa, 0);
    EXPECT_EQ(testing::isa_param_name(info), std::string(isa_name(isa)));
  }
}

// The instantiation macro end to end: one test per supported ISA, named
// after it, with that ISA active in the body.
class IsaPrintParamTest : public testing::IsaTest {};

TEST_P(IsaPrintParamTest, NamedAfterItsIsaWhichIsActive) {
  const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::string suffix = "/";
  suffix += isa_name(GetParam());
  ASSERT_GE(name.size(), suffix.size());
  EXPECT_EQ(name.substr(name.size() - suffix.size()), suffix) << name;
  EXPECT_EQ(active_isa(), GetParam());
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(IsaPrintParamTest);

}  // namespace
}  // namespace sparq
