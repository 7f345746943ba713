// The per-ISA table of the element-wise kernels (docs/design.md rule 2):
// filled from what this build compiled, looked up once per operator call.
#include "kernels/elementwise_kernels.hpp"

#include "dispatch/kernel_list.hpp"

namespace sparq::detail {
namespace {

#define SPARQ_ELEMENTWISE_TABLE(suffix)                                                       \
  ElementwiseKernels {                                                                        \
#suffix, &exp_f32__##suffix, &tanh_f32__##suffix, &gelu_erf_f32__##suffix,                \
        &gelu_tanh_f32__##suffix, &softmax_rows_f32__##suffix, &layer_norm_rows_f32__##suffix \
  }

const ElementwiseKernels kReference = SPARQ_ELEMENTWISE_TABLE(reference);
#if defined(SPARQ_HAVE_AVX2)
const ElementwiseKernels kAvx2 = SPARQ_ELEMENTWISE_TABLE(avx2);
#endif
#if defined(SPARQ_HAVE_AVX512VNNI)
const ElementwiseKernels kAvx512 = SPARQ_ELEMENTWISE_TABLE(avx512);
#endif

#undef SPARQ_ELEMENTWISE_TABLE

// Float math gains nothing from VNNI, tiles, dot products or i8mm, so those
// levels fall back to avx2 / avx512. ARM runs the portable reference (no
// NEON file yet): correct everywhere, not vectorised there.
const std::array kList = {
    KernelEntry<ElementwiseKernels>{Isa::scalar, &kReference},
#if defined(SPARQ_HAVE_AVX2)
    KernelEntry<ElementwiseKernels>{Isa::avx2, &kAvx2},
#endif
#if defined(SPARQ_HAVE_AVX512VNNI)
    KernelEntry<ElementwiseKernels>{Isa::avx512vnni, &kAvx512},
#endif
};

}  // namespace

const ElementwiseKernels& elementwise_kernels(Isa isa) noexcept { return select(kList, isa); }

}  // namespace sparq::detail
