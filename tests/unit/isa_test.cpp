#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "sparq/error.hpp"
#include "sparq/isa.hpp"

namespace sparq {
namespace {

TEST(Isa, ScalarIsAlwaysSupportedAndFirst) {
  ASSERT_FALSE(supported_isas().empty());
  EXPECT_EQ(supported_isas().front(), Isa::scalar);
  EXPECT_TRUE(isa_supported(Isa::scalar));
}

TEST(Isa, NamesRoundTrip) {
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avxvnni, Isa::avx512vnni, Isa::neon, Isa::neondot,
                  Isa::neoni8mm}) {
    EXPECT_EQ(parse_isa(isa_name(isa)), isa);
  }
}

TEST(Isa, UnknownNameIsAClearError) {
  try {
    parse_isa("sse9");
    FAIL() << "parse_isa accepted an unknown name";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'sse9'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("avx512vnni"), std::string::npos) << e.what();
  }
}

TEST(Isa, ScopedIsaForcesAndRestores) {
  const Isa before = active_isa();
  for (Isa isa : supported_isas()) {
    ScopedIsa guard(isa);
    EXPECT_EQ(active_isa(), isa);
  }
  EXPECT_EQ(active_isa(), before);
}

TEST(Isa, ForcingAnUnsupportedIsaThrows) {
  // An ISA of the other architecture is never supported.
#if defined(__x86_64__)
  const Isa foreign = Isa::neon;
#else
  const Isa foreign = Isa::avx2;
#endif
  EXPECT_FALSE(isa_supported(foreign));
  EXPECT_THROW(ScopedIsa guard(foreign), Error);
}

TEST(Isa, BestIsaIsTheLastSupported) { EXPECT_EQ(best_isa(), supported_isas().back()); }

TEST(Isa, ExpectedIsaMatchesTheEnvironmentOfTheCiRun) {
  // CI sets SPARQ_EXPECT_ISA to the ISA it expects this host (or qemu CPU
  // model) to choose, so a detection bug cannot silently fall back to scalar.
  const char* expected = std::getenv("SPARQ_EXPECT_ISA");
  if (expected == nullptr) GTEST_SKIP() << "SPARQ_EXPECT_ISA not set";
  EXPECT_EQ(isa_name(best_isa()), std::string(expected));
}

TEST(Isa, CpuInfoIsFilled) {
  const CpuInfo& info = cpu_info();
  EXPECT_FALSE(info.architecture.empty());
  EXPECT_FALSE(info.brand.empty());
}

}  // namespace
}  // namespace sparq
