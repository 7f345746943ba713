// The per-ISA table of observer kernels (docs/design.md rule 2): filled from what
// this build compiled, looked up once per observe() call.
#include "kernels/observe_kernels.hpp"

#include "dispatch/kernel_list.hpp"

namespace sparq::detail {
namespace {

#define SPARQ_OBSERVE_TABLE(suffix)                                       \
  ObserveKernels {                                                        \
    &observe_minmax_f32__##suffix, &observe_minmax_columns_f32__##suffix, \
        &observe_histogram_f32__##suffix                                  \
  }

const ObserveKernels kReference = SPARQ_OBSERVE_TABLE(reference);
#if defined(SPARQ_HAVE_AVX2)
const ObserveKernels kAvx2 = SPARQ_OBSERVE_TABLE(avx2);
#endif
#if defined(SPARQ_HAVE_AVX512VNNI)
const ObserveKernels kAvx512 = SPARQ_OBSERVE_TABLE(avx512);
#endif
#if defined(SPARQ_HAVE_NEON)
const ObserveKernels kNeon = SPARQ_OBSERVE_TABLE(neon);
#endif

#undef SPARQ_OBSERVE_TABLE

// The list (kernel_list.hpp): float min/max and binning gain nothing from
// VNNI, tiles, dot product or i8mm, so those levels fall back to avx2 /
// avx512 / neon.
const std::array kList = {
    KernelEntry<ObserveKernels>{Isa::scalar, &kReference},
#if defined(SPARQ_HAVE_AVX2)
    KernelEntry<ObserveKernels>{Isa::avx2, &kAvx2},
#endif
#if defined(SPARQ_HAVE_AVX512VNNI)
    KernelEntry<ObserveKernels>{Isa::avx512vnni, &kAvx512},
#endif
#if defined(SPARQ_HAVE_NEON)
    KernelEntry<ObserveKernels>{Isa::neon, &kNeon},
#endif
};

}  // namespace

const ObserveKernels& observe_kernels(Isa isa) { return select(kList, isa); }

}  // namespace sparq::detail
