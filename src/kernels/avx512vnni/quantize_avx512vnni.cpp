// AVX-512 (F/BW/VL/DQ) quantize / dequantize kernels. Bit-exact with
// src/kernels/reference/quantize_reference.cpp (semantics in
// src/kernels/quantize_kernels.hpp). Tails use masked loads/stores, so no
// element is touched outside [0, n).
#include <immintrin.h>

#include "kernels/quantize_kernels.hpp"

namespace sparq::detail {
namespace {

struct QConst {
  __m512 inv, lo, hi;
  __m512i zp;
};

QConst make_const(float inv_scale, int32_t zp, int32_t qmin, int32_t qmax) {
  return {_mm512_set1_ps(inv_scale), _mm512_set1_ps(static_cast<float>(qmin - zp)),
          _mm512_set1_ps(static_cast<float>(qmax - zp)), _mm512_set1_epi32(zp)};
}

// 16 floats -> 16 int32 in [qmin, qmax]. NaN lanes are zeroed before the
// clamp (as the reference does), so they become clamp(zp). The clamp happens
// in the float domain because cvtps2dq maps out-of-range values to INT32_MIN.
inline __m512i quantize16(__m512 x, const QConst& k) {
  const __mmask16 ordered = _mm512_cmp_ps_mask(x, x, _CMP_ORD_Q);
  __m512 t = _mm512_maskz_mov_ps(ordered, _mm512_mul_ps(x, k.inv));
  t = _mm512_min_ps(_mm512_max_ps(t, k.lo), k.hi);
  return _mm512_add_epi32(_mm512_cvtps_epi32(t), k.zp);  // default MXCSR: ties to even
}

// The values already lie inside the storage type, so vpmovdb's truncation
// yields the right byte for int8 and uint8 alike.
void quantize_any(const float* src, uint8_t* dst, std::size_t n, const QConst& k) {
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i q0 = quantize16(_mm512_loadu_ps(src + i), k);
    const __m512i q1 = quantize16(_mm512_loadu_ps(src + i + 16), k);
    const __m512i q2 = quantize16(_mm512_loadu_ps(src + i + 32), k);
    const __m512i q3 = quantize16(_mm512_loadu_ps(src + i + 48), k);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i + 16), _mm512_cvtepi32_epi8(q1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i + 32), _mm512_cvtepi32_epi8(q2));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i + 48), _mm512_cvtepi32_epi8(q3));
  }
  for (; i + 16 <= n; i += 16) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm512_cvtepi32_epi8(quantize16(_mm512_loadu_ps(src + i), k)));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm_mask_storeu_epi8(dst + i, m,
                         _mm512_cvtepi32_epi8(quantize16(_mm512_maskz_loadu_ps(m, src + i), k)));
  }
}

template <bool kSigned>
inline __m512i widen16(__m128i b) {
  return kSigned ? _mm512_cvtepi8_epi32(b) : _mm512_cvtepu8_epi32(b);
}

template <bool kSigned>
void dequantize_any(const uint8_t* src, float* dst, std::size_t n, float scale, int32_t zp) {
  const __m512 s = _mm512_set1_ps(scale);
  const __m512i z = _mm512_set1_epi32(zp);
  auto one = [&](__m128i b) {
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(widen16<kSigned>(b), z)), s);
  };
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i b = _mm512_loadu_si512(src + i);
    _mm512_storeu_ps(dst + i, one(_mm512_castsi512_si128(b)));
    _mm512_storeu_ps(dst + i + 16, one(_mm512_extracti32x4_epi32(b, 1)));
    _mm512_storeu_ps(dst + i + 32, one(_mm512_extracti32x4_epi32(b, 2)));
    _mm512_storeu_ps(dst + i + 48, one(_mm512_extracti32x4_epi32(b, 3)));
  }
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(dst + i, one(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(dst + i, m, one(_mm_maskz_loadu_epi8(m, src + i)));
  }
}

// Channel is the last axis (inner == 1): the parameters vary per element and
// are loaded as vectors alongside the data.
void quantize_channel_inner1(const QuantizeChannelArgs& a) {
  const float* src = a.src;
  auto* dst = static_cast<uint8_t*>(a.dst);
  const __m512i qmin = _mm512_set1_epi32(a.qmin), qmax = _mm512_set1_epi32(a.qmax);
  auto one = [&](std::size_t i, __mmask16 m) {
    const __m512i zp = _mm512_maskz_loadu_epi32(m, a.zero_points + i);
    const QConst k{_mm512_maskz_loadu_ps(m, a.inv_scales + i),
                   _mm512_cvtepi32_ps(_mm512_sub_epi32(qmin, zp)),
                   _mm512_cvtepi32_ps(_mm512_sub_epi32(qmax, zp)), zp};
    _mm_mask_storeu_epi8(dst + i, m,
                         _mm512_cvtepi32_epi8(quantize16(_mm512_maskz_loadu_ps(m, src + i), k)));
  };
  std::size_t i = 0;
  for (; i + 16 <= a.channels; i += 16) one(i, 0xFFFF);
  if (i < a.channels) one(i, static_cast<__mmask16>((1u << (a.channels - i)) - 1));
}

template <bool kSigned>
void dequantize_channel_inner1(const DequantizeChannelArgs& a) {
  const auto* src = static_cast<const uint8_t*>(a.src);
  auto one = [&](std::size_t i, __mmask16 m) {
    const __m512i q = widen16<kSigned>(_mm_maskz_loadu_epi8(m, src + i));
    const __m512i zp = _mm512_maskz_loadu_epi32(m, a.zero_points + i);
    const __m512 x = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, zp)),
                                   _mm512_maskz_loadu_ps(m, a.scales + i));
    _mm512_mask_storeu_ps(a.dst + i, m, x);
  };
  std::size_t i = 0;
  for (; i + 16 <= a.channels; i += 16) one(i, 0xFFFF);
  if (i < a.channels) one(i, static_cast<__mmask16>((1u << (a.channels - i)) - 1));
}

// Quantizing is the same code for int8 and uint8 storage (the clamp to
// [qmin, qmax] before narrowing decides the range), so kSigned is unused;
// it only gives SPARQ_DEFINE_QUANTIZE_KERNELS one shape for all four.
template <bool kSigned>
void quantize_tensor(const QuantizeTensorArgs& a) {
  quantize_any(a.src, static_cast<uint8_t*>(a.dst), a.n,
               make_const(a.inv_scale, a.zero_point, a.qmin, a.qmax));
}

template <bool kSigned>
void dequantize_tensor(const DequantizeTensorArgs& a) {
  dequantize_any<kSigned>(static_cast<const uint8_t*>(a.src), a.dst, a.n, a.scale, a.zero_point);
}

template <bool kSigned>
void quantize_channel(const QuantizeChannelArgs& a) {
  if (a.inner == 1) return quantize_channel_inner1(a);
  auto* dst = static_cast<uint8_t*>(a.dst);
  for (std::size_t c = 0; c < a.channels; ++c) {
    quantize_any(a.src + c * a.inner, dst + c * a.inner, a.inner,
                 make_const(a.inv_scales[c], a.zero_points[c], a.qmin, a.qmax));
  }
}

template <bool kSigned>
void dequantize_channel(const DequantizeChannelArgs& a) {
  if (a.inner == 1) return dequantize_channel_inner1<kSigned>(a);
  const auto* src = static_cast<const uint8_t*>(a.src);
  for (std::size_t c = 0; c < a.channels; ++c) {
    dequantize_any<kSigned>(src + c * a.inner, a.dst + c * a.inner, a.inner, a.scales[c],
                            a.zero_points[c]);
  }
}

}  // namespace

SPARQ_DEFINE_QUANTIZE_KERNELS(avx512vnni, true, false)

}  // namespace sparq::detail
