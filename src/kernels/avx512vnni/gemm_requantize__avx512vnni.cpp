// AVX-512 requantizing output stage, bit-exact with sparq::requantize():
// saturating bias add, saturating left shift, Q31 rounding doubling high
// multiply on 64-bit products, rounding right shift, clamp, narrow.
#include <immintrin.h>

#include "kernels/gemm_kernels.hpp"

namespace sparq::detail {
namespace {

// a + b saturated to int32.
inline __m512i add_sat(__m512i a, __m512i b) {
  const __m512i s = _mm512_add_epi32(a, b);
  const __m512i overflow = _mm512_and_si512(_mm512_xor_si512(a, s), _mm512_xor_si512(b, s));
  const __m512i limit = _mm512_xor_si512(_mm512_srai_epi32(a, 31), _mm512_set1_epi32(0x7FFFFFFF));
  return _mm512_mask_blend_epi32(_mm512_movepi32_mask(overflow), s, limit);
}

// multiply_by_quantized_multiplier for 16 lanes (multiplier >= 0).
inline __m512i mul_by_quantized_multiplier(__m512i x, __m512i m, __m512i shift) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i left = _mm512_max_epi32(shift, zero);
  const __m512i right = _mm512_max_epi32(_mm512_sub_epi32(zero, shift), zero);
  const __m512i hi = _mm512_srav_epi32(_mm512_set1_epi32(0x7FFFFFFF), left);
  const __m512i lo = _mm512_srav_epi32(_mm512_set1_epi32(INT32_MIN), left);
  __m512i v = _mm512_sllv_epi32(x, left);
  v = _mm512_mask_blend_epi32(_mm512_cmpgt_epi32_mask(x, hi), v, _mm512_set1_epi32(0x7FFFFFFF));
  v = _mm512_mask_blend_epi32(_mm512_cmpgt_epi32_mask(lo, x), v, _mm512_set1_epi32(INT32_MIN));
  // round((v * m) / 2^31) half away from zero == floor((v * m + 2^30) / 2^31).
  const __m512i nudge = _mm512_set1_epi64(int64_t{1} << 30);
  const __m512i even = _mm512_add_epi64(_mm512_mul_epi32(v, m), nudge);
  const __m512i odd =
      _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(v, 32), _mm512_srli_epi64(m, 32)), nudge);
  const __m512i r = _mm512_mask_blend_epi32(__mmask16(0xAAAA), _mm512_srli_epi64(even, 31),
                                            _mm512_slli_epi64(odd, 1));
  // Rounding divide by 2^right, ties away from zero.
  const __m512i mask =
      _mm512_sub_epi32(_mm512_sllv_epi32(_mm512_set1_epi32(1), right), _mm512_set1_epi32(1));
  const __m512i rem = _mm512_and_si512(r, mask);
  const __m512i threshold = _mm512_sub_epi32(_mm512_srli_epi32(mask, 1), _mm512_srai_epi32(r, 31));
  const __m512i q = _mm512_srav_epi32(r, right);
  return _mm512_mask_add_epi32(q, _mm512_cmpgt_epi32_mask(rem, threshold), q, _mm512_set1_epi32(1));
}

// saturate_int32(a + b + c) of int32 lanes, summed in int64 (one saturation).
inline __m512i add3_sat(__m512i a, __m512i b, __m512i c) {
  const __m512i max32 = _mm512_set1_epi64(INT32_MAX);
  const __m512i min32 = _mm512_set1_epi64(INT32_MIN);
  auto half = [&](__m256i x, __m256i y, __m256i z) {
    const __m512i s =
        _mm512_add_epi64(_mm512_add_epi64(_mm512_cvtepi32_epi64(x), _mm512_cvtepi32_epi64(y)),
                         _mm512_cvtepi32_epi64(z));
    return _mm512_cvtepi64_epi32(_mm512_max_epi64(_mm512_min_epi64(s, max32), min32));
  };
  const __m256i lo =
      half(_mm512_castsi512_si256(a), _mm512_castsi512_si256(b), _mm512_castsi512_si256(c));
  const __m256i hi = half(_mm512_extracti64x4_epi64(a, 1), _mm512_extracti64x4_epi64(b, 1),
                          _mm512_extracti64x4_epi64(c, 1));
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

template <class T>
void requantize_tile(const GemmRequantizeParams& p) noexcept {
  const __m512i lo = _mm512_set1_epi32(p.qmin - p.zero_point);
  const __m512i hi = _mm512_set1_epi32(p.qmax - p.zero_point);
  const __m512i zp = _mm512_set1_epi32(p.zero_point);
  T* out = static_cast<T*>(p.out);
  for (int j = 0; j < p.cols; j += 16) {
    const int left = p.cols - j;
    const __mmask16 mask = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
    const __m512i m = _mm512_maskz_loadu_epi32(mask, p.multiplier + j);
    const __m512i s = _mm512_maskz_loadu_epi32(mask, p.shift + j);
    const __m512i b =
        p.bias != nullptr ? _mm512_maskz_loadu_epi32(mask, p.bias + j) : _mm512_setzero_si512();
    const bool res = p.residual != nullptr;
    const __m512i rm = res ? _mm512_maskz_loadu_epi32(mask, p.residual_multiplier + j) : m;
    const __m512i rs = res ? _mm512_maskz_loadu_epi32(mask, p.residual_shift + j) : s;
    const __m512i rzp = _mm512_set1_epi32(p.residual_zero_point);
    for (int i = 0; i < p.rows; ++i) {
      __m512i x = _mm512_maskz_loadu_epi32(mask, p.acc + i * p.ld_acc + j);
      if (res) {
        const __m128i bytes = _mm_maskz_loadu_epi8(mask, p.residual + i * p.residual_ld + j);
        const __m512i r =
            p.residual_signed ? _mm512_cvtepi8_epi32(bytes) : _mm512_cvtepu8_epi32(bytes);
        x = add3_sat(x, b, mul_by_quantized_multiplier(_mm512_sub_epi32(r, rzp), rm, rs));
      } else if (p.bias != nullptr) {
        x = add_sat(x, b);
      }
      __m512i y = mul_by_quantized_multiplier(x, m, s);
      y = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(y, lo), hi), zp);
      _mm512_mask_cvtepi32_storeu_epi8(out + i * p.ld_out + j, mask, y);
    }
  }
}

}  // namespace

SPARQ_DEFINE_GEMM_REQUANTIZE(avx512vnni)

}  // namespace sparq::detail
