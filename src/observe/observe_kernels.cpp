// The per-ISA table of observer kernels (docs/design.md rule 2): filled from what
// this build compiled, looked up once per observe() call.
#include "kernels/observe_kernels.hpp"

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

}  // namespace

const ObserveKernels& observe_kernels(Isa isa) {
  switch (isa) {
#if defined(SPARQ_HAVE_AVX2)
    // Float min/max and binning gain nothing from VNNI: the AVX-VNNI level
    // (VEX-encoded, 256-bit) runs the AVX2 kernels.
    case Isa::avx2:
    case Isa::avxvnni:
      return kAvx2;
#endif
#if defined(SPARQ_HAVE_AVX512VNNI)
    case Isa::avx512vnni:
    case Isa::amx:  // tiles add nothing here: the AVX-512 kernels
      return kAvx512;
#endif
#if defined(SPARQ_HAVE_NEON)
    // dotprod / i8mm add integer instructions only; float kernels are NEON's.
    case Isa::neon:
    case Isa::neondot:
    case Isa::neoni8mm:
      return kNeon;
#endif
    default:
      return kReference;
  }
}

}  // namespace sparq::detail
