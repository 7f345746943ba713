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
    for (int i = 0; i < p.rows; ++i) {
      __m512i x = _mm512_maskz_loadu_epi32(mask, p.acc + i * p.ld_acc + j);
      if (p.bias != nullptr) x = add_sat(x, b);
      __m512i y = mul_by_quantized_multiplier(x, m, s);
      y = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(y, lo), hi), zp);
      _mm512_mask_cvtepi32_storeu_epi8(out + i * p.ld_out + j, mask, y);
    }
  }
}

}  // namespace

void gemm_requantize_u8__avx512vnni(const GemmRequantizeParams& p) noexcept {
  requantize_tile<uint8_t>(p);
}

void gemm_requantize_s8__avx512vnni(const GemmRequantizeParams& p) noexcept {
  requantize_tile<int8_t>(p);
}

}  // namespace sparq::detail
