// The per-ISA table of the depthwise convolution kernels (docs/design.md
// "Kernel tables"), looked up once per convolution call.
#include "kernels/depthwise_kernels.hpp"

#include "dispatch/kernel_list.hpp"

namespace sparq::detail {
namespace {

#define SPARQ_TABLE(isa, suffix) \
  DepthwiseKernels { #suffix, &depthwise_row_u8s16__##suffix }

// VNNI, AVX-512 and AMX levels run the AVX2 kernel (an AVX-512 one would
// have to be written without a host here to run it); ARM runs the scalar
// reference, which the compiler vectorises for NEON.
#define SPARQ_KERNELS(X) X(scalar, scalar) X(avx2, avx2)

SPARQ_KERNEL_FAMILY(kFamily)

}  // namespace

const DepthwiseKernels& depthwise_kernels(Isa isa) noexcept { return kFamily(isa); }

}  // namespace sparq::detail
