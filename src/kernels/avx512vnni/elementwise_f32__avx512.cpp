// AVX-512F element-wise kernels: the templates of elementwise_simd.inc on
// 16-lane __m512 vectors with mask registers (contracts and accuracy in
// elementwise_kernels.hpp). Uses only AVX-512F/DQ, which every CPU of the
// avx512vnni level has.
#include <immintrin.h>

#include <cstddef>
#include <cstring>

#include "kernels/elementwise_kernels.hpp"

namespace sparq::detail {
namespace {

// The shared templates (and SPARQ_SIMD_FLOAT_OPS); they use V only when
// instantiated below, so they may come before V.
#include "kernels/elementwise_simd.inc"

struct Avx512 {
  static constexpr std::size_t W = 16;
  using F = __m512;
  using M = __mmask16;
  struct D {
    __m512d lo, hi;
  };
  SPARQ_SIMD_FLOAT_OPS(_mm512)
  static F abs(F a) { return _mm512_abs_ps(a); }
  static F round(F a) {
    return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static F scale_pow2(F y, F n) {
    // 2^n as 2^h * 2^(n - h), h = n / 2: both factors are normal floats.
    const __m512i ni = _mm512_cvtps_epi32(n);
    const __m512i h = _mm512_srai_epi32(ni, 1);
    const __m512i l = _mm512_sub_epi32(ni, h);
    const __m512i bias = _mm512_set1_epi32(127);
    const F ph = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(h, bias), 23));
    const F pl = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(l, bias), 23));
    return _mm512_mul_ps(_mm512_mul_ps(y, ph), pl);
  }
  static M lt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M gt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M is_nan(F a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static F select(M m, F if_true, F if_false) { return _mm512_mask_blend_ps(m, if_false, if_true); }
  static F copysign(F magnitude, F sign) {
    const F sign_bit = _mm512_set1_ps(-0.0f);
    return _mm512_or_ps(_mm512_andnot_ps(sign_bit, magnitude), _mm512_and_ps(sign_bit, sign));
  }
  static float reduce_max(F v) { return _mm512_reduce_max_ps(v); }
  static D dzero() { return {_mm512_setzero_pd(), _mm512_setzero_pd()}; }
  static void accumulate(D& acc, F v) {
    acc.lo = _mm512_add_pd(acc.lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    acc.hi = _mm512_add_pd(acc.hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
  }
  static void accumulate_squared_deviation(D& acc, F v, double mean) {
    const __m512d m = _mm512_set1_pd(mean);
    const __m512d lo = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v)), m);
    const __m512d hi = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)), m);
    acc.lo = _mm512_fmadd_pd(lo, lo, acc.lo);
    acc.hi = _mm512_fmadd_pd(hi, hi, acc.hi);
  }
  static F normalise(F x, F w, F b, double mean, double rstd) {
    auto half = [&](__m256 xs, __m256 ws, __m256 bs) {
      __m512d v = _mm512_sub_pd(_mm512_cvtps_pd(xs), _mm512_set1_pd(mean));
      v = _mm512_mul_pd(_mm512_mul_pd(v, _mm512_set1_pd(rstd)), _mm512_cvtps_pd(ws));
      return _mm512_cvtpd_ps(_mm512_add_pd(v, _mm512_cvtps_pd(bs)));
    };
    const __m256 lo =
        half(_mm512_castps512_ps256(x), _mm512_castps512_ps256(w), _mm512_castps512_ps256(b));
    const __m256 hi = half(_mm512_extractf32x8_ps(x, 1), _mm512_extractf32x8_ps(w, 1),
                           _mm512_extractf32x8_ps(b, 1));
    return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
  }
  static double reduce(const D& acc) { return _mm512_reduce_add_pd(_mm512_add_pd(acc.lo, acc.hi)); }
};

}  // namespace

SPARQ_DEFINE_ELEMENTWISE_KERNELS(avx512, Avx512)

}  // namespace sparq::detail
