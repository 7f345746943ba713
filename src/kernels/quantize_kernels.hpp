// Kernel interface of affine quantize / dequantize (fp32 <-> int8 / uint8).
//
// Every ISA folder (src/kernels/<isa>/quantize_<isa>.cpp) implements the
// functions declared at the bottom of this file for its ISA; the table
// function quantize_kernels(Isa) in src/quant/quantize_kernels.cpp picks one
// table per call. This header is included by ISA-flagged files, so it holds
// only plain structs and declarations (no inline code: see docs/design.md rule 1).
//
// Semantics every kernel must reproduce bit for bit (the scalar reference in
// src/kernels/reference/quantize_reference.cpp is the definition):
//
//   quantize:   t = x * inv_scale                    (fp32 multiply, no FMA)
//               t = 0 if t is NaN                    (so NaN -> zero_point)
//               t = min(max(t, lo), hi)              lo = qmin - zp, hi = qmax - zp
//               q = round_half_even(t) + zp          (cvtps2dq / nearbyint in the
//                                                     default rounding mode)
//     Clamping in the float domain BEFORE the conversion matters: SIMD
//     float->int32 conversion turns out-of-range values (and +-Inf, NaN)
//     into INT32_MIN. Because lo and hi are integers, clamping before
//     rounding equals rounding then saturating to [qmin, qmax].
//   dequantize: x = float(q - zp) * scale            (integer subtract, exact)
//
// All kernels assume the default MXCSR / FPCR rounding mode (round to nearest
// even) and no flush-to-zero changes between the scalar and SIMD paths; they
// never change the mode themselves.
//
// Pointers need no alignment; n may be 0. Kernels are noexcept, never
// throw, and validate nothing (the front end in include/sparq/quant/ does).
#pragma once

#include <cstddef>
#include <cstdint>

namespace sparq::detail {

/// Per-tensor quantize of n contiguous floats into n bytes (int8 or uint8).
struct QuantizeTensorArgs {
  const float* src;
  void* dst;  // int8_t* or uint8_t*, by the function's name
  std::size_t n;
  float inv_scale;  // 1.0f / scale, computed once by the front end
  int32_t zero_point;
  int32_t qmin, qmax;  // saturation range, inside the storage type's range
};

/// Per-tensor dequantize of n contiguous bytes into n floats.
struct DequantizeTensorArgs {
  const void* src;  // int8_t* or uint8_t*
  float* dst;
  std::size_t n;
  float scale;
  int32_t zero_point;
};

/// Per-channel quantize of one contiguous run of channels*inner values:
/// element i belongs to channel i / inner, so channel c covers
/// [c*inner, (c+1)*inner) and uses inv_scales[c], zero_points[c].
/// inner == 1 is the "channel is the last axis" case: the kernel loads the
/// parameters as vectors. For other small inner sizes the front end expands
/// the parameters to one entry per element and calls with inner == 1.
struct QuantizeChannelArgs {
  const float* src;
  void* dst;
  std::size_t channels;
  std::size_t inner;
  const float* inv_scales;     // [channels]
  const int32_t* zero_points;  // [channels]
  int32_t qmin, qmax;
};

struct DequantizeChannelArgs {
  const void* src;
  float* dst;
  std::size_t channels;
  std::size_t inner;
  const float* scales;         // [channels]
  const int32_t* zero_points;  // [channels]
};

// Function types, so each declaration below is one name (the definitions
// spell the signature out).
using QuantizeTensor = void(const QuantizeTensorArgs&) noexcept;
using DequantizeTensor = void(const DequantizeTensorArgs&) noexcept;
using QuantizeChannel = void(const QuantizeChannelArgs&) noexcept;
using DequantizeChannel = void(const DequantizeChannelArgs&) noexcept;
using QuantizeTensorFn = QuantizeTensor*;
using DequantizeTensorFn = DequantizeTensor*;
using QuantizeChannelFn = QuantizeChannel*;
using DequantizeChannelFn = DequantizeChannel*;

/// One ISA's quantize kernels. s8 = int8_t storage, u8 = uint8_t storage.
struct QuantizeKernels {
  const char* name;  // e.g. "avx2", for diagnostics and benchmarks
  QuantizeTensorFn quantize_s8, quantize_u8;
  DequantizeTensorFn dequantize_s8, dequantize_u8;
  QuantizeChannelFn quantize_channel_s8, quantize_channel_u8;
  DequantizeChannelFn dequantize_channel_s8, dequantize_channel_u8;
};

// Naming: <op>_<dtype>__<isa> (docs/design.md rule 4). Each group is defined in
// src/kernels/<isa>/quantize_<isa>.cpp.
#define SPARQ_DECLARE_QUANTIZE_KERNELS(isa)                               \
  QuantizeTensor quantize_s8__##isa, quantize_u8__##isa;                  \
  DequantizeTensor dequantize_s8__##isa, dequantize_u8__##isa;            \
  QuantizeChannel quantize_channel_s8__##isa, quantize_channel_u8__##isa; \
  DequantizeChannel dequantize_channel_s8__##isa, dequantize_channel_u8__##isa;

// Defines the eight kernels of an ISA file from its templates
// quantize_tensor, dequantize_tensor, quantize_channel and
// dequantize_channel, instantiated with `s8` for int8_t storage and `u8`
// for uint8_t (a type, or a signedness flag).
#define SPARQ_DEFINE_QUANTIZE_KERNELS(isa, s8, u8)                                                \
  void quantize_s8__##isa(const QuantizeTensorArgs& a) noexcept { quantize_tensor<s8>(a); }       \
  void quantize_u8__##isa(const QuantizeTensorArgs& a) noexcept { quantize_tensor<u8>(a); }       \
  void dequantize_s8__##isa(const DequantizeTensorArgs& a) noexcept { dequantize_tensor<s8>(a); } \
  void dequantize_u8__##isa(const DequantizeTensorArgs& a) noexcept { dequantize_tensor<u8>(a); } \
  void quantize_channel_s8__##isa(const QuantizeChannelArgs& a) noexcept {                        \
    quantize_channel<s8>(a);                                                                      \
  }                                                                                               \
  void quantize_channel_u8__##isa(const QuantizeChannelArgs& a) noexcept {                        \
    quantize_channel<u8>(a);                                                                      \
  }                                                                                               \
  void dequantize_channel_s8__##isa(const DequantizeChannelArgs& a) noexcept {                    \
    dequantize_channel<s8>(a);                                                                    \
  }                                                                                               \
  void dequantize_channel_u8__##isa(const DequantizeChannelArgs& a) noexcept {                    \
    dequantize_channel<u8>(a);                                                                    \
  }

SPARQ_DECLARE_QUANTIZE_KERNELS(reference)
SPARQ_DECLARE_QUANTIZE_KERNELS(avx2)
SPARQ_DECLARE_QUANTIZE_KERNELS(avx512vnni)
// AVX-VNNI adds nothing to quantization (it is a dot-product extension), so
// the avxvnni table points at the avx2 kernels; there is no avxvnni file.
SPARQ_DECLARE_QUANTIZE_KERNELS(neon)  // src/kernels/neon/quantize_neon.cpp (ARM helper)

}  // namespace sparq::detail

namespace sparq {
enum class Isa;
namespace detail {
/// The kernel table for `isa` (defined in src/quant/quantize_kernels.cpp).
/// ISAs without kernels of their own fall back to the closest lower table.
const QuantizeKernels& quantize_kernels(Isa isa) noexcept;
}  // namespace detail
}  // namespace sparq
