// The per-ISA table of the element-wise kernels (docs/design.md "Kernel
// tables"): filled from what this build compiled, looked up once per
// operator call.
#include "kernels/elementwise_kernels.hpp"

#include "dispatch/kernel_list.hpp"

namespace sparq::detail {
namespace {

#define SPARQ_TABLE(isa, suffix)                                                              \
  ElementwiseKernels {                                                                        \
#suffix, &exp_f32__##suffix, &tanh_f32__##suffix, &gelu_erf_f32__##suffix,                \
        &gelu_tanh_f32__##suffix, &softmax_rows_f32__##suffix, &layer_norm_rows_f32__##suffix \
  }

// Float math gains nothing from VNNI, tiles, dot products or i8mm, so those
// levels fall back to avx2 / avx512. ARM runs the portable reference (no
// NEON file yet): correct everywhere, not vectorised there.
#define SPARQ_KERNELS(X) X(scalar, reference) X(avx2, avx2) X(avx512vnni, avx512)

SPARQ_KERNEL_FAMILY(kFamily)

}  // namespace

const ElementwiseKernels& elementwise_kernels(Isa isa) noexcept { return kFamily(isa); }

}  // namespace sparq::detail
