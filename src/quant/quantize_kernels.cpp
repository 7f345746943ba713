// The per-ISA tables of quantize / dequantize kernels (docs/design.md "Kernel
// tables"): looked up once per call by the front end
// (include/sparq/quant/quantize.hpp -> src/quant/quantize.cpp), above the
// element loops.
#include "kernels/quantize_kernels.hpp"

#include "dispatch/kernel_list.hpp"
#include "sparq/isa.hpp"

namespace sparq::detail {
namespace {

// A table is its ISA folder's functions, named <op>_<dtype>__<suffix>.
#define SPARQ_TABLE(isa, suffix)                                                               \
  QuantizeKernels {                                                                            \
#suffix, quantize_s8__##suffix, quantize_u8__##suffix, dequantize_s8__##suffix,            \
        dequantize_u8__##suffix, quantize_channel_s8__##suffix, quantize_channel_u8__##suffix, \
        dequantize_channel_s8__##suffix, dequantize_channel_u8__##suffix                       \
  }

// AVX-VNNI and AMX add nothing to element-wise conversions, nor do dot
// product and i8mm on ARM: they fall back to avx2 / avx512vnni / neon.
#define SPARQ_KERNELS(X) X(scalar, reference) X(avx2, avx2) X(avx512vnni, avx512vnni) X(neon, neon)

SPARQ_KERNEL_FAMILY(kFamily)

}  // namespace

const QuantizeKernels& quantize_kernels(Isa isa) noexcept { return kFamily(isa); }

}  // namespace sparq::detail
