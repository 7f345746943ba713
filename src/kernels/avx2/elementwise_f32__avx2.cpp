// AVX2+FMA element-wise kernels: the templates of elementwise_simd.inc on
// 8-lane __m256 vectors (contracts and accuracy in elementwise_kernels.hpp).
#include <immintrin.h>

#include <cstddef>
#include <cstring>

#include "kernels/elementwise_kernels.hpp"

namespace sparq::detail {
namespace {

// The shared templates (and SPARQ_SIMD_FLOAT_OPS); they use V only when
// instantiated below, so they may come before V.
#include "kernels/elementwise_simd.inc"

struct Avx2 {
  static constexpr std::size_t W = 8;
  using F = __m256;
  using M = __m256;
  struct D {
    __m256d lo, hi;
  };
  SPARQ_SIMD_FLOAT_OPS(_mm256)
  static F abs(F a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static F round(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static F scale_pow2(F y, F n) {
    // 2^n as 2^h * 2^(n - h), h = n / 2: both factors are normal floats.
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i h = _mm256_srai_epi32(ni, 1);
    const __m256i l = _mm256_sub_epi32(ni, h);
    const __m256i bias = _mm256_set1_epi32(127);
    const F ph = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, bias), 23));
    const F pl = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(l, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(y, ph), pl);
  }
  static M lt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M gt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static M is_nan(F a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static F select(M m, F if_true, F if_false) { return _mm256_blendv_ps(if_false, if_true, m); }
  static F copysign(F magnitude, F sign) {
    const F sign_bit = _mm256_set1_ps(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(sign_bit, magnitude), _mm256_and_ps(sign_bit, sign));
  }
  static float reduce_max(F v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
  }
  static D dzero() { return {_mm256_setzero_pd(), _mm256_setzero_pd()}; }
  static void accumulate(D& acc, F v) {
    acc.lo = _mm256_add_pd(acc.lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    acc.hi = _mm256_add_pd(acc.hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  }
  static void accumulate_squared_deviation(D& acc, F v, double mean) {
    const __m256d m = _mm256_set1_pd(mean);
    const __m256d lo = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), m);
    const __m256d hi = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), m);
    acc.lo = _mm256_fmadd_pd(lo, lo, acc.lo);
    acc.hi = _mm256_fmadd_pd(hi, hi, acc.hi);
  }
  static F normalise(F x, F w, F b, double mean, double rstd) {
    auto half = [&](__m128 xs, __m128 ws, __m128 bs) {
      __m256d v = _mm256_sub_pd(_mm256_cvtps_pd(xs), _mm256_set1_pd(mean));
      v = _mm256_mul_pd(_mm256_mul_pd(v, _mm256_set1_pd(rstd)), _mm256_cvtps_pd(ws));
      return _mm256_cvtpd_ps(_mm256_add_pd(v, _mm256_cvtps_pd(bs)));
    };
    return _mm256_set_m128(
        half(_mm256_extractf128_ps(x, 1), _mm256_extractf128_ps(w, 1), _mm256_extractf128_ps(b, 1)),
        half(_mm256_castps256_ps128(x), _mm256_castps256_ps128(w), _mm256_castps256_ps128(b)));
  }
  static double reduce(const D& acc) {
    alignas(32) double lanes[4];
    _mm256_store_pd(lanes, _mm256_add_pd(acc.lo, acc.hi));
    return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  }
};

}  // namespace

SPARQ_DEFINE_ELEMENTWISE_KERNELS(avx2, Avx2)

}  // namespace sparq::detail
