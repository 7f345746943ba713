// The per-ISA GEMM tables (DESIGN.md rule 2): looked up once per call.
#include "kernels/gemm_kernels.hpp"

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
    .ukernel = gemm_u8s8s32_ukernel_4x8c4__avx2,
    .pack_a = gemm_pack_a__scalar,
    .requantize_u8 = gemm_requantize_u8__avx2,
    .requantize_s8 = gemm_requantize_s8__avx2,
    .dequantize = gemm_dequantize__avx2,
};
#endif

#if defined(SPARQ_HAVE_AVXVNNI)
// AVX-VNNI shares AVX2's output stages (same ymm width; no VNNI needed there).
constexpr GemmKernels kAvxVnni{
    .isa = Isa::avxvnni,
    .ukernel_name = "gemm_u8s8s32_ukernel_6x16c4__avxvnni",
    .mr = 6,
    .nr = 16,
    .kr = 4,
    .a_shift_u8 = 0,
    .a_shift_s8 = 128,
    .ukernel = gemm_u8s8s32_ukernel_6x16c4__avxvnni,
    .pack_a = gemm_pack_a__scalar,
#if defined(SPARQ_HAVE_AVX2)
    .requantize_u8 = gemm_requantize_u8__avx2,
    .requantize_s8 = gemm_requantize_s8__avx2,
    .dequantize = gemm_dequantize__avx2,
#else
    .requantize_u8 = gemm_requantize_u8__scalar,
    .requantize_s8 = gemm_requantize_s8__scalar,
    .dequantize = gemm_dequantize__scalar,
#endif
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
};
#endif

}  // namespace

const GemmKernels& gemm_kernels(Isa isa) {
  switch (isa) {
#if defined(SPARQ_ARCH_X86)
#if defined(SPARQ_HAVE_AVX2)
    case Isa::avx2: return kAvx2;
#endif
#if defined(SPARQ_HAVE_AVXVNNI)
    case Isa::avxvnni: return kAvxVnni;
#endif
#if defined(SPARQ_HAVE_AVX512VNNI)
    case Isa::avx512vnni: return kAvx512Vnni;
#endif
#endif
#if defined(SPARQ_ARCH_ARM)
    // ARM helper: add `case Isa::neon/neondot/neoni8mm: return kNeon...;` with
    // tables for the kernels in src/kernels/neon*/ (declare them in
    // gemm_kernels.hpp). Each ISA may choose its own mr/nr/kr and a_shift.
#endif
    default: return kScalar;
  }
}

}  // namespace sparq::detail
