// Dynamic quantization of activation rows (linear_dynamic), AVX-512: the
// same arithmetic as gemm_quantize__scalar (IEEE division, round half to
// even, clamp), 16 floats at a time.
#include <immintrin.h>

#include "kernels/gemm_kernels.hpp"

namespace sparq::detail {

bool gemm_range__avx512vnni(const float* x, int64_t n, float* min, float* max) noexcept {
  __m512 mn = _mm512_set1_ps(*min);
  __m512 mx = _mm512_set1_ps(*max);
  const __m512i exp_mask = _mm512_set1_epi32(0x7F800000);
  __mmask16 special = 0;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1u);
    const __m512 v = _mm512_mask_loadu_ps(mn, m, x + i);  // inactive lanes: a value of mn
    const __m512i e = _mm512_and_si512(_mm512_castps_si512(v), exp_mask);
    special |= _mm512_mask_cmpeq_epi32_mask(m, e, exp_mask);
    mn = _mm512_min_ps(v, mn);
    mx = _mm512_max_ps(v, mx);
  }
  *min = _mm512_reduce_min_ps(mn);
  *max = _mm512_reduce_max_ps(mx);
  return special == 0;
}

void gemm_quantize__avx512vnni(const GemmQuantizeParams& p) noexcept {
  const __m512 scale = _mm512_set1_ps(p.scale);
  const __m512 lo = _mm512_set1_ps(-512.0f);
  const __m512 hi = _mm512_set1_ps(512.0f);
  const __m512 zp = _mm512_set1_ps(static_cast<float>(p.zero_point));
  const __m512 zero = _mm512_setzero_ps();
  const __m512 top = _mm512_set1_ps(255.0f);
  for (int64_t i = 0; i < p.n; i += 16) {
    const __mmask16 m = p.n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (p.n - i)) - 1u);
    __m512 t = _mm512_div_ps(_mm512_maskz_loadu_ps(m, p.x + i), scale);
    t = _mm512_min_ps(_mm512_max_ps(t, lo), hi);
    __m512 r = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_add_ps(r, zp);
    r = _mm512_min_ps(_mm512_max_ps(r, zero), top);
    _mm512_mask_cvtepi32_storeu_epi8(p.q + i, m, _mm512_cvttps_epi32(r));
  }
}

}  // namespace sparq::detail
