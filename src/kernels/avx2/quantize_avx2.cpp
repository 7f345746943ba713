// AVX2 quantize / dequantize kernels (also used for Isa::avxvnni, which adds
// nothing to quantization). Bit-exact with
// src/kernels/reference/quantize_reference.cpp (semantics in
// src/kernels/quantize_kernels.hpp). AVX2 has no byte-masked stores, so
// tails go through small stack buffers and run the same vector code.
#include <immintrin.h>

#include <cstring>

#include "kernels/quantize_kernels.hpp"

namespace sparq::detail {
namespace {

struct QConst {
  __m256 inv, lo, hi;
  __m256i zp;
};

QConst make_const(float inv_scale, int32_t zp, int32_t qmin, int32_t qmax) {
  return {_mm256_set1_ps(inv_scale), _mm256_set1_ps(static_cast<float>(qmin - zp)),
          _mm256_set1_ps(static_cast<float>(qmax - zp)), _mm256_set1_epi32(zp)};
}

// 8 floats -> 8 int32 in [qmin, qmax]; see quantize16 in the AVX-512 file
// for why NaN is zeroed first and why the clamp precedes the conversion.
inline __m256i quantize8(__m256 x, const QConst& k) {
  __m256 t = _mm256_and_ps(_mm256_mul_ps(x, k.inv), _mm256_cmp_ps(x, x, _CMP_ORD_Q));
  t = _mm256_min_ps(_mm256_max_ps(t, k.lo), k.hi);
  return _mm256_add_epi32(_mm256_cvtps_epi32(t), k.zp);  // default MXCSR: ties to even
}

// 8 int32 (already in the storage range) -> 8 bytes in the low half.
template <bool kSigned>
inline __m128i narrow8(__m256i q) {
  const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
  return kSigned ? _mm_packs_epi16(w, w) : _mm_packus_epi16(w, w);
}

template <bool kSigned>
void quantize_any(const float* src, uint8_t* dst, std::size_t n, const QConst& k) {
  std::size_t i = 0;
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (; i + 32 <= n; i += 32) {
    const __m256i q0 = quantize8(_mm256_loadu_ps(src + i), k);
    const __m256i q1 = quantize8(_mm256_loadu_ps(src + i + 8), k);
    const __m256i q2 = quantize8(_mm256_loadu_ps(src + i + 16), k);
    const __m256i q3 = quantize8(_mm256_loadu_ps(src + i + 24), k);
    // packs work per 128-bit lane; the permute restores element order.
    const __m256i w01 = _mm256_packs_epi32(q0, q1), w23 = _mm256_packs_epi32(q2, q3);
    const __m256i b = kSigned ? _mm256_packs_epi16(w01, w23) : _mm256_packus_epi16(w01, w23);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_permutevar8x32_epi32(b, order));
  }
  for (; i + 8 <= n; i += 8) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + i),
                     narrow8<kSigned>(quantize8(_mm256_loadu_ps(src + i), k)));
  }
  if (i < n) {
    float in[8] = {};
    alignas(16) uint8_t out[16];
    std::memcpy(in, src + i, (n - i) * sizeof(float));
    _mm_store_si128(reinterpret_cast<__m128i*>(out),
                    narrow8<kSigned>(quantize8(_mm256_loadu_ps(in), k)));
    std::memcpy(dst + i, out, n - i);
  }
}

template <bool kSigned>
inline __m256i widen8(__m128i b) {
  return kSigned ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
}

template <bool kSigned>
void dequantize_any(const uint8_t* src, float* dst, std::size_t n, float scale, int32_t zp) {
  const __m256 s = _mm256_set1_ps(scale);
  const __m256i z = _mm256_set1_epi32(zp);
  auto one = [&](__m128i b) {
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(widen8<kSigned>(b), z)), s);
  };
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    const __m128i b0 = _mm256_castsi256_si128(b), b1 = _mm256_extracti128_si256(b, 1);
    _mm256_storeu_ps(dst + i, one(b0));
    _mm256_storeu_ps(dst + i + 8, one(_mm_srli_si128(b0, 8)));
    _mm256_storeu_ps(dst + i + 16, one(b1));
    _mm256_storeu_ps(dst + i + 24, one(_mm_srli_si128(b1, 8)));
  }
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(dst + i, one(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + i))));
  }
  if (i < n) {
    uint8_t in[16] = {};
    float out[8];
    std::memcpy(in, src + i, n - i);
    _mm256_storeu_ps(out, one(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in))));
    std::memcpy(dst + i, out, (n - i) * sizeof(float));
  }
}

// Channel is the last axis (inner == 1): parameters are loaded as vectors.
template <bool kSigned>
void quantize_channel_inner1(const QuantizeChannelArgs& a) {
  auto* dst = static_cast<uint8_t*>(a.dst);
  const __m256i qmin = _mm256_set1_epi32(a.qmin), qmax = _mm256_set1_epi32(a.qmax);
  auto one = [&](const float* x, const float* inv, const int32_t* zps) {
    const __m256i zp = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zps));
    const QConst k{_mm256_loadu_ps(inv), _mm256_cvtepi32_ps(_mm256_sub_epi32(qmin, zp)),
                   _mm256_cvtepi32_ps(_mm256_sub_epi32(qmax, zp)), zp};
    return narrow8<kSigned>(quantize8(_mm256_loadu_ps(x), k));
  };
  std::size_t i = 0;
  for (; i + 8 <= a.channels; i += 8) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + i),
                     one(a.src + i, a.inv_scales + i, a.zero_points + i));
  }
  if (i < a.channels) {
    const std::size_t r = a.channels - i;
    float x[8] = {}, inv[8] = {};
    int32_t zp[8] = {};
    alignas(16) uint8_t out[16];
    std::memcpy(x, a.src + i, r * sizeof(float));
    std::memcpy(inv, a.inv_scales + i, r * sizeof(float));
    std::memcpy(zp, a.zero_points + i, r * sizeof(int32_t));
    _mm_store_si128(reinterpret_cast<__m128i*>(out), one(x, inv, zp));
    std::memcpy(dst + i, out, r);
  }
}

template <bool kSigned>
void dequantize_channel_inner1(const DequantizeChannelArgs& a) {
  const auto* src = static_cast<const uint8_t*>(a.src);
  auto one = [&](const uint8_t* q, const float* s, const int32_t* zps) {
    const __m256i zp = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zps));
    const __m256i v = widen8<kSigned>(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q)));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(v, zp)), _mm256_loadu_ps(s));
  };
  std::size_t i = 0;
  for (; i + 8 <= a.channels; i += 8) {
    _mm256_storeu_ps(a.dst + i, one(src + i, a.scales + i, a.zero_points + i));
  }
  if (i < a.channels) {
    const std::size_t r = a.channels - i;
    uint8_t q[8] = {};
    float s[8] = {}, out[8];
    int32_t zp[8] = {};
    std::memcpy(q, src + i, r);
    std::memcpy(s, a.scales + i, r * sizeof(float));
    std::memcpy(zp, a.zero_points + i, r * sizeof(int32_t));
    _mm256_storeu_ps(out, one(q, s, zp));
    std::memcpy(a.dst + i, out, r * sizeof(float));
  }
}

template <bool kSigned>
void quantize_tensor(const QuantizeTensorArgs& a) {
  quantize_any<kSigned>(a.src, static_cast<uint8_t*>(a.dst), a.n,
                        make_const(a.inv_scale, a.zero_point, a.qmin, a.qmax));
}

template <bool kSigned>
void dequantize_tensor(const DequantizeTensorArgs& a) {
  dequantize_any<kSigned>(static_cast<const uint8_t*>(a.src), a.dst, a.n, a.scale, a.zero_point);
}

template <bool kSigned>
void quantize_channel(const QuantizeChannelArgs& a) {
  if (a.inner == 1) return quantize_channel_inner1<kSigned>(a);
  auto* dst = static_cast<uint8_t*>(a.dst);
  for (std::size_t c = 0; c < a.channels; ++c) {
    quantize_any<kSigned>(a.src + c * a.inner, dst + c * a.inner, a.inner,
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

SPARQ_DEFINE_QUANTIZE_KERNELS(avx2, true, false)

}  // namespace sparq::detail
