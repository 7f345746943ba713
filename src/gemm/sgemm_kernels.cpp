// The per-ISA FP32 GEMM tables, looked up once per sgemm() call.
//
// K blocks: the packed A tile (MR x kc floats) should stay in L1 (32 KiB on
// every CPU these kernels target) next to the weight panel streaming
// through: 14 x 256 x 4 = 14 KiB (AVX-512), 6 x 256 x 4 = 6 KiB (AVX2). A
// longer block updates C less often (C loads and stores are 1-2% of the
// work at 256); 384 was measured slower on Zen 3 (the 24 KiB panel block
// and the A tile no longer fit L1 together).
#include "kernels/sgemm_kernels.hpp"

namespace sparq::detail {
namespace {

constexpr SgemmKernels kScalar{
    .isa = Isa::scalar,
    .ukernel_name = "sgemm_f32_ukernel_4x8__scalar",
    .mr = 4,
    .nr = 8,
    .kc = 256,
    .ukernel = sgemm_f32_ukernel_4x8__scalar,
};

#if defined(SPARQ_HAVE_AVX2)
constexpr SgemmKernels kAvx2{
    .isa = Isa::avx2,
    .ukernel_name = "sgemm_f32_ukernel_6x16__avx2fma",
    .mr = 6,
    .nr = 16,
    .kc = 256,
    .ukernel = sgemm_f32_ukernel_6x16__avx2fma,
};
#endif

#if defined(SPARQ_HAVE_AVX512VNNI)
// Lives in the avx512vnni folder (built with AVX-512 F/BW/VL/DQ + VNNI
// flags) but uses AVX-512F only.
constexpr SgemmKernels kAvx512{
    .isa = Isa::avx512vnni,
    .ukernel_name = "sgemm_f32_ukernel_14x32__avx512f",
    .mr = 14,
    .nr = 32,
    .kc = 256,
    .ukernel = sgemm_f32_ukernel_14x32__avx512f,
};
#endif

#if defined(SPARQ_ARCH_ARM) && defined(SPARQ_HAVE_NEON)
constexpr SgemmKernels kNeon{
    .isa = Isa::neon,
    .ukernel_name = "sgemm_f32_ukernel_8x8__neon",
    .mr = 8,
    .nr = 8,
    .kc = 256,
    .ukernel = sgemm_f32_ukernel_8x8__neon,
};
#endif

}  // namespace

const SgemmKernels& sgemm_kernels(Isa isa) {
  switch (isa) {
    case Isa::scalar:
      return kScalar;
#if defined(SPARQ_ARCH_X86) && defined(SPARQ_HAVE_AVX2)
    case Isa::avx2:
    case Isa::avxvnni:  // AVX-VNNI adds integer dot products only: AVX2's FP32 kernel
      return kAvx2;
#endif
#if defined(SPARQ_ARCH_X86) && defined(SPARQ_HAVE_AVX512VNNI)
    case Isa::avx512vnni:
      return kAvx512;
#endif
#if defined(SPARQ_ARCH_ARM) && defined(SPARQ_HAVE_NEON)
    case Isa::neon:
    case Isa::neondot:
    case Isa::neoni8mm:
      return kNeon;
#endif
    default:
      // An ISA without FP32 kernels of its own (amx, or any level added
      // later): every x86 level above avx512vnni implies AVX-512, but check
      // what this CPU runs rather than assume the enum's order.
#if defined(SPARQ_ARCH_X86) && defined(SPARQ_HAVE_AVX512VNNI)
      if (isa_supported(Isa::avx512vnni)) return kAvx512;
#endif
#if defined(SPARQ_ARCH_X86) && defined(SPARQ_HAVE_AVX2)
      if (isa_supported(Isa::avx2)) return kAvx2;
#endif
#if defined(SPARQ_ARCH_ARM) && defined(SPARQ_HAVE_NEON)
      if (isa_supported(Isa::neon)) return kNeon;
#endif
      return kScalar;
  }
}

}  // namespace sparq::detail
