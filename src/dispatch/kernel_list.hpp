// One declarative list per kernel family (docs/design.md "Kernel tables").
// A family file (src/gemm/gemm_kernels.cpp, ...) writes only
//   * a table macro SPARQ_TABLE(isa, args...) that builds one table, and
//   * an X-list SPARQ_KERNELS(X) of X(isa, args...) rows, one per ISA that
//     has kernels of its own,
// and SPARQ_KERNEL_FAMILY(name) turns them into the tables k_<isa> (only
// for the ISAs this build compiled: SPARQ_IF_<isa>) and one KernelFamily,
// which does the fallback walk, the tests' override and the lookup for
// every family the same way. An ISA a list leaves out runs the next lower
// level's table (fallback()). Internal to src/.
#pragma once

#include <array>
#include <atomic>
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

/// One family's list plus the tests' override: the only lookup the family
/// functions (gemm_kernels(), quantize_kernels(), ...) do. Define it
/// `constinit` at namespace scope (SPARQ_KERNEL_FAMILY does): the list is a
/// constant and the override starts out empty, so no static initialisation
/// order can bite.
template <class Table, std::size_t N>
class KernelFamily {
 public:
  constexpr explicit KernelFamily(const std::array<KernelEntry<Table>, N>& list) : list_(list) {}

  /// The overriding table if a test set one, else select(list, isa).
  const Table& operator()(Isa isa) const noexcept {
    if (const Table* forced = override_.load(std::memory_order_relaxed)) return *forced;
    return select(list_, isa);
  }

  /// Tests: makes operator() return `table` (nullptr: the list again) and
  /// gives back what was set before, so scopes nest.
  const Table* set_override(const Table* table) noexcept { return override_.exchange(table); }

 private:
  std::array<KernelEntry<Table>, N> list_;
  std::atomic<const Table*> override_{nullptr};
};

template <class Table, std::size_t N>
KernelFamily(const std::array<KernelEntry<Table>, N>&) -> KernelFamily<Table, N>;

template <class Table>
constexpr KernelEntry<Table> kernel_entry(Isa isa, const Table& table) noexcept {
  return {isa, &table};
}

}  // namespace sparq::detail

// SPARQ_IF_<isa>(...): its arguments where this build compiled the kernels
// of <isa> (cmake/SparqIsa.cmake defines SPARQ_HAVE_<ISA> for every ISA of
// the target architecture; amx only where the compiler knows it), else
// nothing. Lower-case, as the Isa enumerators, so a list row's `isa` names both.
#define SPARQ_IF_scalar(...) __VA_ARGS__
#if defined(SPARQ_HAVE_AVX2)
#define SPARQ_IF_avx2(...) __VA_ARGS__
#else
#define SPARQ_IF_avx2(...)
#endif
#if defined(SPARQ_HAVE_AVXVNNI)
#define SPARQ_IF_avxvnni(...) __VA_ARGS__
#else
#define SPARQ_IF_avxvnni(...)
#endif
#if defined(SPARQ_HAVE_AVX512VNNI)
#define SPARQ_IF_avx512vnni(...) __VA_ARGS__
#else
#define SPARQ_IF_avx512vnni(...)
#endif
#if defined(SPARQ_HAVE_AMX)
#define SPARQ_IF_amx(...) __VA_ARGS__
#else
#define SPARQ_IF_amx(...)
#endif
#if defined(SPARQ_HAVE_NEON)
#define SPARQ_IF_neon(...) __VA_ARGS__
#else
#define SPARQ_IF_neon(...)
#endif
#if defined(SPARQ_HAVE_NEONDOT)
#define SPARQ_IF_neondot(...) __VA_ARGS__
#else
#define SPARQ_IF_neondot(...)
#endif
#if defined(SPARQ_HAVE_NEONI8MM)
#define SPARQ_IF_neoni8mm(...) __VA_ARGS__
#else
#define SPARQ_IF_neoni8mm(...)
#endif

#define SPARQ_DETAIL_KERNEL_TABLE(isa, ...) \
  SPARQ_IF_##isa(constexpr auto k_##isa = SPARQ_TABLE(isa, __VA_ARGS__);)
#define SPARQ_DETAIL_KERNEL_ENTRY(isa, ...) \
  SPARQ_IF_##isa(::sparq::detail::kernel_entry(::sparq::Isa::isa, k_##isa), )

/// Defines k_<isa> = SPARQ_TABLE(isa, args...) for every row X(isa, args...)
/// of SPARQ_KERNELS that this build compiled, then `constinit KernelFamily
/// name` over them. The list must have a scalar row. A row's table may name
/// the tables of rows above it (AMX's small-M table is k_avx512vnni).
#define SPARQ_KERNEL_FAMILY(name)               \
  SPARQ_KERNELS(SPARQ_DETAIL_KERNEL_TABLE)      \
  constinit ::sparq::detail::KernelFamily name{ \
      std::array{SPARQ_KERNELS(SPARQ_DETAIL_KERNEL_ENTRY)}};
