// The row-count dispatch every microkernel with a compile-time row count
// does: a call stores mr (1..MR) rows, and the kernel is one template over
// the row count so a short tile keeps its accumulators in registers and
// never touches rows it does not own. Internal linkage, so each ISA-flagged
// includer compiles its own copy with its own flags (docs/design.md rule 1).
#pragma once

#include <type_traits>

namespace sparq::detail {
namespace {

/// Calls kernel(std::integral_constant<int, mr>()) for mr = 1..MR-1 and
/// kernel(std::integral_constant<int, MR>()) for every other mr (the full
/// tile; the drivers never pass mr outside 1..MR). Written as one switch so
/// the compiler emits the same jump table as a hand-written switch over the
/// row counts; a case at or above MR breaks out to the full tile.
template <int MR, class Kernel>
inline void dispatch_rows(int mr, Kernel&& kernel) noexcept {
  static_assert(MR >= 1 && MR <= 16, "add cases below for taller tiles");
#define SPARQ_ROWS_CASE(m)                                                 \
  case m:                                                                  \
    if constexpr (m < MR) return kernel(std::integral_constant<int, m>()); \
    break;
  switch (mr) {
    SPARQ_ROWS_CASE(1)
    SPARQ_ROWS_CASE(2)
    SPARQ_ROWS_CASE(3)
    SPARQ_ROWS_CASE(4)
    SPARQ_ROWS_CASE(5)
    SPARQ_ROWS_CASE(6)
    SPARQ_ROWS_CASE(7)
    SPARQ_ROWS_CASE(8)
    SPARQ_ROWS_CASE(9)
    SPARQ_ROWS_CASE(10)
    SPARQ_ROWS_CASE(11)
    SPARQ_ROWS_CASE(12)
    SPARQ_ROWS_CASE(13)
    SPARQ_ROWS_CASE(14)
    SPARQ_ROWS_CASE(15)
    default:
      break;
  }
#undef SPARQ_ROWS_CASE
  kernel(std::integral_constant<int, MR>());
}

}  // namespace
}  // namespace sparq::detail
