// The kernel lists' fallback chain (src/dispatch/kernel_list.hpp): it ends in
// scalar from every ISA, never leaves what the CPU runs (a supported ISA's
// fallback is supported too, so no table ever hands out code the CPU cannot
// execute), and select() takes the nearest listed level.
#include <gtest/gtest.h>

#include <array>

#include "dispatch/kernel_list.hpp"
#include "sparq/isa.hpp"

namespace sparq::detail {
namespace {

constexpr std::array kAll = {Isa::scalar, Isa::avx2, Isa::avxvnni, Isa::avx512vnni,
                             Isa::amx,    Isa::neon, Isa::neondot, Isa::neoni8mm};

TEST(KernelList, EveryChainEndsInScalar) {
  for (Isa isa : kAll) {
    Isa level = isa;
    int steps = 0;
    while (level != Isa::scalar && steps < 8) {
      level = fallback(level);
      ++steps;
    }
    EXPECT_EQ(level, Isa::scalar) << isa_name(isa);
  }
}

TEST(KernelList, FallbackStaysWithinWhatTheCpuRuns) {
  for (Isa isa : supported_isas()) {
    EXPECT_TRUE(isa_supported(fallback(isa)))
        << isa_name(isa) << " falls back to " << isa_name(fallback(isa));
  }
}

TEST(KernelList, SelectTakesTheNearestListedLevel) {
  const int scalar = 0, avx2 = 1, avx512 = 2, neon = 3;
  const std::array list = {
      KernelEntry<int>{Isa::scalar, &scalar}, KernelEntry<int>{Isa::avx2, &avx2},
      KernelEntry<int>{Isa::avx512vnni, &avx512}, KernelEntry<int>{Isa::neon, &neon}};
  EXPECT_EQ(&select(list, Isa::scalar), &scalar);
  EXPECT_EQ(&select(list, Isa::avxvnni), &avx2);
  EXPECT_EQ(&select(list, Isa::avx512vnni), &avx512);
  EXPECT_EQ(&select(list, Isa::amx), &avx512);
  EXPECT_EQ(&select(list, Isa::neoni8mm), &neon);
  const std::array only_scalar = {KernelEntry<int>{Isa::scalar, &scalar}};
  EXPECT_EQ(&select(only_scalar, Isa::amx), &scalar);
}

}  // namespace
}  // namespace sparq::detail
