// The per-ISA GEMM tables (docs/design.md rule 2): looked up once per call.
#include "kernels/gemm_kernels.hpp"

#include <atomic>

namespace sparq::detail {
namespace {

constexpr GemmKernels kScalar{
    .isa = Isa::scalar,
    .ukernel_name = "gemm_u8s8s32_ukernel_4x8c4__scalar",
    .mr = 4,
    .nr = 8,
    .kr = 4,
    .a_shift_u8 = 0,
    .a_shift_s8 = 128,
    .ukernel = gemm_u8s8s32_ukernel_4x8c4__scalar,
    .pack_a = gemm_pack_a__scalar,
    .requantize_u8 = gemm_requantize_u8__scalar,
    .requantize_s8 = gemm_requantize_s8__scalar,
    .dequantize = gemm_dequantize__scalar,
    .range = gemm_range__scalar,
    .quantize = gemm_quantize__scalar,
};

#if defined(SPARQ_HAVE_AVX2)
constexpr GemmKernels kAvx2{
    .isa = Isa::avx2,
    .ukernel_name = "gemm_u8s8s32_ukernel_4x8c4__avx2",
    .mr = 4,
    .nr = 8,
    .kr = 4,
    .a_shift_u8 = 0,
    .a_shift_s8 = 128,
    .a_elem_bytes = 2,
    .ukernel = gemm_u8s8s32_ukernel_4x8c4__avx2,
    .pack_a = gemm_pack_a_s16__avx2,
    .requantize_u8 = gemm_requantize_u8__avx2,
    .requantize_s8 = gemm_requantize_s8__avx2,
    .dequantize = gemm_dequantize__avx2,
    .range = gemm_range__scalar,
    .quantize = gemm_quantize__scalar,
};
#endif

#if defined(SPARQ_HAVE_AVXVNNI)
// AVX-VNNI shares AVX2's output stages (same ymm width; no VNNI needed there).
constexpr GemmKernels kAvxVnni {
  .isa = Isa::avxvnni, .ukernel_name = "gemm_u8s8s32_ukernel_6x16c4__avxvnni", .mr = 6, .nr = 16,
  .kr = 4, .a_shift_u8 = 0, .a_shift_s8 = 128, .ukernel = gemm_u8s8s32_ukernel_6x16c4__avxvnni,
  .pack_a = gemm_pack_a__scalar,
#if defined(SPARQ_HAVE_AVX2)
  .requantize_u8 = gemm_requantize_u8__avx2, .requantize_s8 = gemm_requantize_s8__avx2,
  .dequantize = gemm_dequantize__avx2,
#else
  .requantize_u8 = gemm_requantize_u8__scalar, .requantize_s8 = gemm_requantize_s8__scalar,
  .dequantize = gemm_dequantize__scalar,
#endif
  .range = gemm_range__scalar, .quantize = gemm_quantize__scalar,
};
#endif

#if defined(SPARQ_HAVE_AVX512VNNI)
constexpr GemmKernels kAvx512Vnni{
    .isa = Isa::avx512vnni,
    .ukernel_name = "gemm_u8s8s32_ukernel_6x64c4__avx512vnni",
    .mr = 6,
    .nr = 64,
    .kr = 4,
    .a_shift_u8 = 0,
    .a_shift_s8 = 128,
    .ukernel = gemm_u8s8s32_ukernel_6x64c4__avx512vnni,
    .pack_a = gemm_pack_a__scalar,
    .requantize_u8 = gemm_requantize_u8__avx512vnni,
    .requantize_s8 = gemm_requantize_s8__avx512vnni,
    .dequantize = gemm_dequantize__avx512vnni,
    .range = gemm_range__avx512vnni,
    .quantize = gemm_quantize__avx512vnni,
};
#endif

#if defined(SPARQ_HAVE_AMX) && defined(SPARQ_HAVE_AVX512VNNI)
// AMX: the avx512vnni weight layout, read by 16x64-byte tiles (32 rows x 64
// columns per call), and the avx512vnni output stages. With few rows a tile
// is mostly padding and the call is bound by reading the weights: below 8
// rows the avx512vnni kernel, on the same packed weights, was faster on a
// 16-core Xeon with AMX (one thread, N = K = 4096, interleaved runs: M = 6
// 262-274 GOPS against 209-255 on tiles; M = 8 267-317 against 279-347).
constexpr GemmKernels kAmx{
    .isa = Isa::amx,
    .ukernel_name = "gemm_u8s8s32_ukernel_32x64c4__amx",
    .mr = 32,
    .nr = 64,
    .kr = 4,
    .a_shift_u8 = 0,
    .a_shift_s8 = 128,
    .ukernel = gemm_u8s8s32_ukernel_32x64c4__amx,
    .pack_a = gemm_pack_a_k64__scalar,
    .requantize_u8 = gemm_requantize_u8__avx512vnni,
    .requantize_s8 = gemm_requantize_s8__avx512vnni,
    .dequantize = gemm_dequantize__avx512vnni,
    .range = gemm_range__avx512vnni,
    .quantize = gemm_quantize__avx512vnni,
    .small_m = &kAvx512Vnni,
    .small_m_below = 8,
};
#endif

// The same AMX kernel source built against the tile emulation: portable
// (scalar output stages), every M on the tile kernel so tests cover it all.
constexpr GemmKernels kAmxEmulated{
    .isa = Isa::amx,
    .ukernel_name = "gemm_u8s8s32_ukernel_32x64c4__amxemu",
    .mr = 32,
    .nr = 64,
    .kr = 4,
    .a_shift_u8 = 0,
    .a_shift_s8 = 128,
    .ukernel = gemm_u8s8s32_ukernel_32x64c4__amxemu,
    .pack_a = gemm_pack_a_k64__scalar,
    .requantize_u8 = gemm_requantize_u8__scalar,
    .requantize_s8 = gemm_requantize_s8__scalar,
    .dequantize = gemm_dequantize__scalar,
    .range = gemm_range__scalar,
    .quantize = gemm_quantize__scalar,
};

std::atomic<const GemmKernels*> g_override{nullptr};

#if defined(SPARQ_ARCH_ARM) && defined(SPARQ_HAVE_NEON)
// ARM: activations are packed as on x86 (u8 as is, s8 + 128) and every
// kernel reads them as u8 (the dot-product kernel flips their top bit
// itself; see its file). The NEON output stages serve all three tables.
#define SPARQ_NEON_TABLE(isa_, name_, mr_, nr_, kr_, ukernel_)                            \
  GemmKernels {                                                                           \
    .isa = isa_, .ukernel_name = name_, .mr = mr_, .nr = nr_, .kr = kr_, .a_shift_u8 = 0, \
    .a_shift_s8 = 128, .ukernel = ukernel_, .pack_a = gemm_pack_a__scalar,                \
    .requantize_u8 = gemm_requantize_u8__neon, .requantize_s8 = gemm_requantize_s8__neon, \
    .dequantize = gemm_dequantize__neon, .range = gemm_range__scalar,                     \
    .quantize = gemm_quantize__scalar,                                                    \
  }
constexpr GemmKernels kNeon = SPARQ_NEON_TABLE(Isa::neon, "gemm_u8s8s32_ukernel_4x4c8__neon", 4, 4,
                                               8, gemm_u8s8s32_ukernel_4x4c8__neon);
#if defined(SPARQ_HAVE_NEONDOT)
constexpr GemmKernels kNeonDot =
    SPARQ_NEON_TABLE(Isa::neondot, "gemm_u8s8s32_ukernel_8x8c4__neondot", 8, 8, 4,
                     gemm_u8s8s32_ukernel_8x8c4__neondot);
#endif
#if defined(SPARQ_HAVE_NEONI8MM)
constexpr GemmKernels kNeonI8mm =
    SPARQ_NEON_TABLE(Isa::neoni8mm, "gemm_u8s8s32_ukernel_8x8c8__neoni8mm", 8, 8, 8,
                     gemm_u8s8s32_ukernel_8x8c8__neoni8mm);
#endif
#undef SPARQ_NEON_TABLE
#endif  // SPARQ_ARCH_ARM

}  // namespace

const GemmKernels& gemm_kernels(Isa isa) {
  if (const GemmKernels* forced = g_override.load(std::memory_order_relaxed)) return *forced;
  switch (isa) {
#if defined(SPARQ_ARCH_X86)
#if defined(SPARQ_HAVE_AVX2)
    case Isa::avx2:
      return kAvx2;
#endif
#if defined(SPARQ_HAVE_AVXVNNI)
    case Isa::avxvnni:
      return kAvxVnni;
#endif
#if defined(SPARQ_HAVE_AVX512VNNI)
    case Isa::avx512vnni:
      return kAvx512Vnni;
#endif
#if defined(SPARQ_HAVE_AMX) && defined(SPARQ_HAVE_AVX512VNNI)
    case Isa::amx:
      return kAmx;
#endif
#endif
#if defined(SPARQ_ARCH_ARM) && defined(SPARQ_HAVE_NEON)
    case Isa::neon:
      return kNeon;
#if defined(SPARQ_HAVE_NEONDOT)
    case Isa::neondot:
      return kNeonDot;
#endif
#if defined(SPARQ_HAVE_NEONI8MM)
    case Isa::neoni8mm:
      return kNeonI8mm;
#endif
#endif
    default:
      return kScalar;
  }
}

const GemmKernels& gemm_kernels_for(Isa isa, int64_t m) {
  const GemmKernels& table = gemm_kernels(isa);
  if (table.small_m != nullptr && m < table.small_m_below) return *table.small_m;
  return table;
}

const GemmKernels& gemm_kernels_amx_emulated() { return kAmxEmulated; }

ScopedGemmKernelsOverride::ScopedGemmKernelsOverride(const GemmKernels& table)
    : previous_(g_override.exchange(&table)) {}

ScopedGemmKernelsOverride::~ScopedGemmKernelsOverride() { g_override.store(previous_); }

}  // namespace sparq::detail
