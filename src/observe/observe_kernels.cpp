// The per-ISA table of observer kernels (docs/design.md "Kernel tables"):
// filled from what this build compiled, looked up once per observe() call.
#include "kernels/observe_kernels.hpp"

#include "dispatch/kernel_list.hpp"

namespace sparq::detail {
namespace {

#define SPARQ_TABLE(isa, suffix)                                          \
  ObserveKernels {                                                        \
    &observe_minmax_f32__##suffix, &observe_minmax_columns_f32__##suffix, \
        &observe_histogram_f32__##suffix                                  \
  }

// Float min/max and binning gain nothing from VNNI, tiles, dot product or
// i8mm, so those levels fall back to avx2 / avx512 / neon.
#define SPARQ_KERNELS(X) X(scalar, reference) X(avx2, avx2) X(avx512vnni, avx512) X(neon, neon)

SPARQ_KERNEL_FAMILY(kFamily)

}  // namespace

const ObserveKernels& observe_kernels(Isa isa) { return kFamily(isa); }

}  // namespace sparq::detail
