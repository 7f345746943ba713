// The per-ISA sparse GEMM tables (docs/design.md rule 2): looked up once per call.
// `nr` must equal the dense table's nr of the same ISA (the expand path runs
// the dense microkernel on expanded sparse panels); `direct_max_m` (and
// `direct_max_m_in_l2`, for weights that fit in L2) is the
// largest M for which the direct kernel measured faster than expand+dense
// (docs/sparse-gemm.md).
#include "kernels/sparse_gemm_kernels.hpp"

#include <cstdint>
#include <limits>

#include "dispatch/cpu_features.hpp"
#include "dispatch/kernel_list.hpp"

namespace sparq::detail {
namespace {

// Without a dot-product instruction (scalar, AVX2's vpmaddwd) the direct
// kernel does half the multiplies of the dense one on the same shape, so it
// wins at every M: the expand path is never chosen automatically.
constexpr int64_t kAlwaysDirect = std::numeric_limits<int64_t>::max();

// A table's names are its kernels' symbols (stringified), so what `sparq
// bench` prints is the code that ran.
#define SPARQ_TABLE(isa_, mr_, nr_, a_kr_, max_m_, max_m_in_l2_, ukernel_, expand_)             \
  SparseGemmKernels {                                                                           \
    .isa = Isa::isa_, .ukernel_name = #ukernel_, .expand_name = #expand_, .mr = mr_, .nr = nr_, \
    .a_kr = a_kr_, .direct_max_m = max_m_, .direct_max_m_in_l2 = max_m_in_l2_,                  \
    .ukernel = ukernel_, .expand = expand_                                                      \
  }

// The list (src/dispatch/kernel_list.hpp). amx CPUs (Sapphire Rapids and
// later) all have VBMI and run the avx512vnni row.
//  * avxvnni: no AVX-VNNI sparse kernel (this ISA cannot run on the
//    development host): the scalar direct kernel at the dense 6x16 table's
//    panel width; large M expands into the AVX-VNNI dense kernel.
//  * avx512vnni: VBMI (Ice Lake, Zen 4 and later) gives the 16-row vpermb
//    direct kernel and the vectorised expand; AVX-512 VNNI CPUs without it
//    (Cascade Lake) get kAvx512NoVbmi below instead. With VBMI the 16-row
//    direct kernel measured at least as fast as expand + dense at every M
//    when the weights come from beyond L2 (bench_sparse_gemm and `sparq
//    bench gemm --sparse`, one thread, N = K = 4096 and 8192, M up to 256:
//    direct 0.96-1.02x dense, expand 0.85-0.96x). With the weights in L2 (N =
//    K = 1024) direct led up to M = 32, tied at 64 and lost at 256 (0.85x
//    against expand's 0.97x: 16 row tiles x 4 passes over a short K), hence
//    64 there.
//  * neondot, and neoni8mm (which implies it): panel width 8 = the neondot
//    dense table's nr (kr 4), so large M expands into
//    gemm_u8s8s32_ukernel_8x8c4__neondot; the neoni8mm dense table has kr 8,
//    so there the driver always runs the direct kernel. The crossover M is
//    not measured on ARM hardware (qemu timings mean nothing): 48 mirrors
//    AVX-512, whose instruction mix (one gather + one dot product per 4 kept
//    values) is the same.
#define SPARQ_KERNELS(X)                                                                        \
  X(scalar, 4, 8, 8, kAlwaysDirect, kAlwaysDirect, spgemm_u8s8s32_ukernel_4xNc8__scalar,        \
    spgemm_expand_Nc4__scalar)                                                                  \
  X(avx2, 4, 8, 8, kAlwaysDirect, kAlwaysDirect, spgemm_u8s8s32_ukernel_4x8c8__avx2,            \
    spgemm_expand_Nc4__scalar)                                                                  \
  X(avxvnni, 4, 16, 8, 0, 0, spgemm_u8s8s32_ukernel_4xNc8__scalar, spgemm_expand_Nc4__scalar)   \
  X(avx512vnni, 16, 64, 64, kAlwaysDirect, 64, spgemm_u8s8s32_ukernel_16x64c64__avx512vbmi,     \
    spgemm_expand_64c4__avx512vbmi)                                                             \
  X(neondot, 4, 8, 8, 48, 24, spgemm_u8s8s32_ukernel_4x8c8__neondot, spgemm_expand_Nc4__scalar) \
  X(neoni8mm, 4, 8, 8, kAlwaysDirect, kAlwaysDirect, spgemm_u8s8s32_ukernel_4x8c8__neondot,     \
    spgemm_expand_Nc4__scalar)

SPARQ_KERNEL_FAMILY(kFamily)

// AVX-512 VNNI without VBMI: the 4-row AVX-512BW direct kernel and the
// scalar expand.
SPARQ_IF_avx512vnni(constexpr SparseGemmKernels kAvx512NoVbmi = SPARQ_TABLE(
                        avx512vnni, 4, 64, 8, 48, 24, spgemm_u8s8s32_ukernel_4x64c8__avx512vnni,
                        spgemm_expand_Nc4__scalar);)

}  // namespace

const SparseGemmKernels& sparse_gemm_kernels_without_vbmi() {
#if defined(SPARQ_HAVE_AVX512VNNI)
  return kAvx512NoVbmi;
#else
  return k_scalar;
#endif
}

const SparseGemmKernels& sparse_gemm_kernels(Isa isa) {
  const SparseGemmKernels& table = kFamily(isa);
  // VBMI is detected once with every other CPU feature (src/dispatch: CPUID
  // and the OS's zmm state).
  SPARQ_IF_avx512vnni(if (&table == &k_avx512vnni &&
                          !cpu_features().avx512vbmi) return kAvx512NoVbmi;) return table;
}

}  // namespace sparq::detail
