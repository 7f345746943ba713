// The per-ISA FP32 GEMM tables, looked up once per sgemm() call.
//
// K blocks: the packed A tile (MR x kc floats) should stay in L1 (32 KiB on
// every CPU these kernels target) next to the weight panel streaming
// through: 14 x 256 x 4 = 14 KiB (AVX-512), 6 x 256 x 4 = 6 KiB (AVX2). A
// longer block updates C less often (C loads and stores are 1-2% of the
// work at 256); 384 was measured slower on Zen 3 (the 24 KiB panel block
// and the A tile no longer fit L1 together).
#include "kernels/sgemm_kernels.hpp"

#include <array>

#include "dispatch/kernel_list.hpp"

namespace sparq::detail {
namespace {

// A table's name is its microkernel's symbol (stringified).
#define SPARQ_SGEMM_TABLE(isa_, mr_, nr_, kc_, ukernel_)                          \
  SgemmKernels {                                                                  \
    .isa = Isa::isa_, .ukernel_name = #ukernel_, .mr = mr_, .nr = nr_, .kc = kc_, \
    .ukernel = ukernel_                                                           \
  }

constexpr SgemmKernels kScalar =
    SPARQ_SGEMM_TABLE(scalar, 4, 8, 256, sgemm_f32_ukernel_4x8__scalar);

#if defined(SPARQ_HAVE_AVX2)
constexpr SgemmKernels kAvx2 = SPARQ_SGEMM_TABLE(avx2, 6, 16, 256, sgemm_f32_ukernel_6x16__avx2fma);
#endif

#if defined(SPARQ_HAVE_AVX512VNNI)
// Lives in the avx512vnni folder (built with AVX-512 F/BW/VL/DQ + VNNI
// flags) but uses AVX-512F only.
constexpr SgemmKernels kAvx512 =
    SPARQ_SGEMM_TABLE(avx512vnni, 14, 32, 256, sgemm_f32_ukernel_14x32__avx512f);
#endif

#if defined(SPARQ_ARCH_ARM) && defined(SPARQ_HAVE_NEON)
constexpr SgemmKernels kNeon = SPARQ_SGEMM_TABLE(neon, 8, 8, 256, sgemm_f32_ukernel_8x8__neon);
#endif

// The list (src/dispatch/kernel_list.hpp): avxvnni falls back to AVX2's
// FP32 kernel (AVX-VNNI adds integer dot products only), amx to AVX-512's,
// neondot and neoni8mm to NEON's.
constexpr std::array kList = {
    KernelEntry<SgemmKernels>{Isa::scalar, &kScalar},
#if defined(SPARQ_HAVE_AVX2)
    KernelEntry<SgemmKernels>{Isa::avx2, &kAvx2},
#endif
#if defined(SPARQ_HAVE_AVX512VNNI)
    KernelEntry<SgemmKernels>{Isa::avx512vnni, &kAvx512},
#endif
#if defined(SPARQ_ARCH_ARM) && defined(SPARQ_HAVE_NEON)
    KernelEntry<SgemmKernels>{Isa::neon, &kNeon},
#endif
};

}  // namespace

const SgemmKernels& sgemm_kernels(Isa isa) { return select(kList, isa); }

}  // namespace sparq::detail
