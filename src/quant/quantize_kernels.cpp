// The per-ISA tables of quantize / dequantize kernels (docs/design.md rule 2).
// Looked up once per call by the front end (include/sparq/quant/quantize.hpp
// -> src/quant/quantize.cpp), above the element loops.
#include "kernels/quantize_kernels.hpp"

#include "dispatch/kernel_list.hpp"
#include "sparq/isa.hpp"

namespace sparq::detail {
namespace {

#define SPARQ_QUANTIZE_TABLE(isa)                                                             \
  QuantizeKernels {                                                                           \
#isa, quantize_s8__##isa, quantize_u8__##isa, dequantize_s8__##isa, dequantize_u8__##isa, \
        quantize_channel_s8__##isa, quantize_channel_u8__##isa, dequantize_channel_s8__##isa, \
        dequantize_channel_u8__##isa                                                          \
  }

constexpr QuantizeKernels kReference = SPARQ_QUANTIZE_TABLE(reference);

#if defined(SPARQ_ARCH_X86)
#if defined(SPARQ_HAVE_AVX2)
constexpr QuantizeKernels kAvx2 = SPARQ_QUANTIZE_TABLE(avx2);
#endif
#if defined(SPARQ_HAVE_AVX512VNNI)
constexpr QuantizeKernels kAvx512 = SPARQ_QUANTIZE_TABLE(avx512vnni);
#endif
#endif  // SPARQ_ARCH_X86

#if defined(SPARQ_ARCH_ARM)
#if defined(SPARQ_HAVE_NEON)
constexpr QuantizeKernels kNeon = SPARQ_QUANTIZE_TABLE(neon);
#endif
#endif  // SPARQ_ARCH_ARM

// The list (kernel_list.hpp): AVX-VNNI and AMX add nothing to element-wise
// conversions, nor do dot product and i8mm on ARM: they fall back to
// avx2 / avx512vnni / neon.
constexpr std::array kList = {
    KernelEntry<QuantizeKernels>{Isa::scalar, &kReference},
#if defined(SPARQ_ARCH_X86) && defined(SPARQ_HAVE_AVX2)
    KernelEntry<QuantizeKernels>{Isa::avx2, &kAvx2},
#endif
#if defined(SPARQ_ARCH_X86) && defined(SPARQ_HAVE_AVX512VNNI)
    KernelEntry<QuantizeKernels>{Isa::avx512vnni, &kAvx512},
#endif
#if defined(SPARQ_ARCH_ARM) && defined(SPARQ_HAVE_NEON)
    KernelEntry<QuantizeKernels>{Isa::neon, &kNeon},
#endif
};

}  // namespace

const QuantizeKernels& quantize_kernels(Isa isa) noexcept { return select(kList, isa); }

}  // namespace sparq::detail
