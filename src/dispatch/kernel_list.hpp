// One declarative list per kernel family (docs/design.md rule 2): each
// table file lists its tables as (ISA, table) entries for the ISAs this
// build compiled, and select() picks the table for an ISA by walking down
// fallback() until it finds one. Adding an ISA is one line in each list
// that has kernels for it; a family without kernels for it inherits the
// next lower level's automatically. Internal to src/.
#pragma once

#include <array>
#include <cstddef>

#include "sparq/isa.hpp"

namespace sparq::detail {

/// The next lower ISA whose instructions `isa` implies: every CPU that runs
/// `isa` runs fallback(isa) (amx -> avx512vnni -> avx2 -> scalar;
/// avxvnni -> avx2; neoni8mm -> neondot -> neon -> scalar). Note that
/// avx512vnni does not fall back to avxvnni: Ice Lake and Zen 4 have
/// AVX-512 VNNI without AVX-VNNI.
constexpr Isa fallback(Isa isa) noexcept {
  switch (isa) {
    case Isa::amx:
      return Isa::avx512vnni;
    case Isa::avx512vnni:
    case Isa::avxvnni:
      return Isa::avx2;
    case Isa::neoni8mm:
      return Isa::neondot;
    case Isa::neondot:
      return Isa::neon;
    default:
      return Isa::scalar;
  }
}

template <class Table>
struct KernelEntry {
  Isa isa;
  const Table* table;
};

/// The table of `isa`, or of the first ISA down its fallback chain that the
/// list has. The list must hold an Isa::scalar entry (the portable
/// reference), which ends every chain.
template <class Table, std::size_t N>
constexpr const Table& select(const std::array<KernelEntry<Table>, N>& list, Isa isa) noexcept {
  for (Isa level = isa;; level = fallback(level)) {
    for (const KernelEntry<Table>& e : list) {
      if (e.isa == level) return *e.table;
    }
    if (level == Isa::scalar) break;
  }
  return *list[0].table;  // unreachable with a scalar entry; keeps the compiler content
}

}  // namespace sparq::detail
