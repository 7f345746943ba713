// The per-ISA tables of quantize / dequantize kernels (docs/design.md rule 2).
// Looked up once per call by the front end (include/sparq/quant/quantize.hpp
// -> src/quant/quantize.cpp), above the element loops.
#include "kernels/quantize_kernels.hpp"

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

}  // namespace

const QuantizeKernels& quantize_kernels(Isa isa) noexcept {
  switch (isa) {
#if defined(SPARQ_ARCH_X86)
#if defined(SPARQ_HAVE_AVX512VNNI)
    case Isa::avx512vnni:
    case Isa::amx:  // tiles add nothing here: the AVX-512 kernels
      return kAvx512;
#endif
#if defined(SPARQ_HAVE_AVX2)
    // AVX-VNNI has no instruction that helps quantization: reuse AVX2.
    case Isa::avxvnni:
    case Isa::avx2:
      return kAvx2;
#endif
#endif  // SPARQ_ARCH_X86
#if defined(SPARQ_ARCH_ARM) && defined(SPARQ_HAVE_NEON)
    // Dot product and i8mm add nothing to element-wise conversions.
    case Isa::neon:
    case Isa::neondot:
    case Isa::neoni8mm:
      return kNeon;
#endif  // SPARQ_ARCH_ARM
    default:
      return kReference;
  }
}

}  // namespace sparq::detail
