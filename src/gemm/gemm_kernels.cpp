// The per-ISA GEMM tables and their list (docs/design.md "Kernel tables", and
// src/dispatch/kernel_list.hpp): looked up once per call. A table's name is
// its microkernel's symbol (SPARQ_TABLE stringifies it), so what
// `sparq bench` prints is the function that ran.
#include "kernels/gemm_kernels.hpp"

#include "dispatch/kernel_list.hpp"

namespace sparq::detail {
namespace {

// Activations are packed u8 as they are and s8 + 128 on every table (the
// GemmKernels defaults), so only the shape, the microkernel, the packer and
// the output stages' ISA differ. Trailing arguments are further designated
// initialisers (AMX's small-M table).
#define SPARQ_TABLE(isa_, mr_, nr_, kr_, a_elem_bytes_, ukernel_, pack_a_, stages_, ...)      \
  GemmKernels {                                                                               \
    .isa = Isa::isa_, .ukernel_name = #ukernel_, .mr = mr_, .nr = nr_, .kr = kr_,             \
    .a_elem_bytes = a_elem_bytes_, .ukernel = ukernel_, .pack_a = pack_a_,                    \
    .requantize_u8 = gemm_requantize_u8__##stages_,                                           \
    .requantize_s8 = gemm_requantize_s8__##stages_, .dequantize = gemm_dequantize__##stages_, \
    __VA_ARGS__                                                                               \
  }

// The list (src/dispatch/kernel_list.hpp): one row per ISA with a
// microkernel of its own.
//  * AVX2 packs A widened to int16 (2 bytes an element): its kernel then
//    broadcasts int16 pairs straight into vpmaddwd.
//  * AVX-VNNI shares AVX2's output stages (same ymm width; no VNNI needed
//    there; every x86 build that has avxvnni has avx2).
//  * AMX: the avx512vnni weight layout, read by 16x64-byte tiles (32 rows x
//    64 columns per call), and the avx512vnni output stages. With few rows a
//    tile is mostly padding and the call is bound by reading the weights:
//    below 8 rows the avx512vnni kernel, on the same packed weights, was
//    faster on a 16-core Xeon with AMX (one thread, N = K = 4096,
//    interleaved runs: M = 6 262-274 GOPS against 209-255 on tiles; M = 8
//    267-317 against 279-347).
//  * ARM: activations are packed as on x86 (u8 as is, s8 + 128) and every
//    kernel reads them as u8 (the dot-product kernel flips their top bit
//    itself; see its file). The NEON output stages serve all three tables.
#define SPARQ_KERNELS(X)                                                                       \
  X(scalar, 4, 8, 4, 1, gemm_u8s8s32_ukernel_4x8c4__scalar, gemm_pack_a__scalar, scalar)       \
  X(avx2, 6, 8, 4, 2, gemm_u8s8s32_ukernel_6x8c4__avx2, gemm_pack_a_s16__avx2, avx2)           \
  X(avxvnni, 6, 16, 4, 1, gemm_u8s8s32_ukernel_6x16c4__avxvnni, gemm_pack_a__scalar, avx2)     \
  X(avx512vnni, 6, 64, 4, 1, gemm_u8s8s32_ukernel_6x64c4__avx512vnni, gemm_pack_a__scalar,     \
    avx512vnni)                                                                                \
  X(amx, 32, 64, 4, 1, gemm_u8s8s32_ukernel_32x64c4__amx, gemm_pack_a_k64__scalar, avx512vnni, \
    .small_m = &k_avx512vnni, .small_m_below = 8)                                              \
  X(neon, 4, 4, 8, 1, gemm_u8s8s32_ukernel_4x4c8__neon, gemm_pack_a__scalar, neon)             \
  X(neondot, 8, 8, 4, 1, gemm_u8s8s32_ukernel_8x8c4__neondot, gemm_pack_a__scalar, neon)       \
  X(neoni8mm, 8, 8, 8, 1, gemm_u8s8s32_ukernel_8x8c8__neoni8mm, gemm_pack_a__scalar, neon)

SPARQ_KERNEL_FAMILY(kFamily)

// The same AMX kernel source built against the tile emulation: portable
// (scalar output stages), every M on the tile kernel so tests cover it all.
constexpr GemmKernels kAmxEmulated = SPARQ_TABLE(
    amx, 32, 64, 4, 1, gemm_u8s8s32_ukernel_32x64c4__amxemu, gemm_pack_a_k64__scalar, scalar);

}  // namespace

const GemmKernels& gemm_kernels(Isa isa) { return kFamily(isa); }

const GemmKernels& gemm_kernels_for(Isa isa, int64_t m) {
  const GemmKernels& table = gemm_kernels(isa);
  if (table.small_m != nullptr && m < table.small_m_below) return *table.small_m;
  return table;
}

const GemmKernels& gemm_kernels_amx_emulated() { return kAmxEmulated; }

ScopedGemmKernelsOverride::ScopedGemmKernelsOverride(const GemmKernels& table)
    : previous_(kFamily.set_override(&table)) {}

ScopedGemmKernelsOverride::~ScopedGemmKernelsOverride() { kFamily.set_override(previous_); }

}  // namespace sparq::detail
