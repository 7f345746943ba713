// The per-ISA FP32 GEMM tables, looked up once per sgemm() call.
//
// K blocks: the packed A tile (MR x kc floats) should stay in L1 (32 KiB on
// every CPU these kernels target) next to the weight panel streaming
// through: 14 x 256 x 4 = 14 KiB (AVX-512), 6 x 256 x 4 = 6 KiB (AVX2). A
// longer block updates C less often (C loads and stores are 1-2% of the
// work at 256); 384 was measured slower on Zen 3 (the 24 KiB panel block
// and the A tile no longer fit L1 together). AVX2's direct-A nest uses the
// same K blocks (its A row segments, 6 x 256 floats, stay in L1 the same
// way); 384 and 512 were within the noise for it (docs/gemm.md).
#include "kernels/sgemm_kernels.hpp"

#include "dispatch/kernel_list.hpp"

namespace sparq::detail {
namespace {

// A table's name is its microkernel's symbol (stringified).
#define SPARQ_TABLE(isa_, mr_, nr_, kc_, ukernel_, direct_)                       \
  SgemmKernels {                                                                  \
    .isa = Isa::isa_, .ukernel_name = #ukernel_, .mr = mr_, .nr = nr_, .kc = kc_, \
    .ukernel = ukernel_, .ukernel_direct = direct_                                \
  }

// avxvnni falls back to AVX2's FP32 kernel (AVX-VNNI adds integer dot
// products only), amx to AVX-512's, neondot and neoni8mm to NEON's. The
// AVX-512 kernel lives in the avx512vnni folder (built with AVX-512
// F/BW/VL/DQ + VNNI flags) but uses AVX-512F only.
#define SPARQ_KERNELS(X)                                                                       \
  X(scalar, 4, 8, 256, sgemm_f32_ukernel_4x8__scalar, nullptr)                                 \
  X(avx2, 6, 16, 256, sgemm_f32_ukernel_6x16__avx2fma, sgemm_f32_ukernel_6x16__avx2fma_direct) \
  X(avx512vnni, 14, 32, 256, sgemm_f32_ukernel_14x32__avx512f, nullptr)                        \
  X(neon, 8, 8, 256, sgemm_f32_ukernel_8x8__neon, nullptr)

SPARQ_KERNEL_FAMILY(kFamily)

}  // namespace

const SgemmKernels& sgemm_kernels(Isa isa) { return kFamily(isa); }

}  // namespace sparq::detail
