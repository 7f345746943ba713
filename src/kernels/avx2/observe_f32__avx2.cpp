// AVX2 observer kernels (contracts in observe_kernels.hpp); the same shape as
// the AVX-512 ones with blends instead of mask registers. Bit-identical to
// the scalar reference; tails run the reference kernel.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "kernels/observe_kernels.hpp"

namespace sparq::detail {
namespace {

#include "kernels/observe_simd.inc"

inline __m256 abs_ps(__m256 v) {
  return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
}

// All-ones lanes where v is finite (ordered compare: false for NaN).
inline __m256 finite_mask(__m256 v) {
  return _mm256_cmp_ps(abs_ps(v), _mm256_set1_ps(INFINITY), _CMP_LT_OQ);
}

inline void count_nonfinite(__m256 v, MinMaxAccum* acc) {
  const int nan = _mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  const int inf =
      _mm256_movemask_ps(_mm256_cmp_ps(abs_ps(v), _mm256_set1_ps(INFINITY), _CMP_EQ_OQ));
  acc->nan_count += __builtin_popcount(static_cast<unsigned>(nan));
  acc->inf_count += __builtin_popcount(static_cast<unsigned>(inf));
}

// Non-finite lanes replaced by the identity of min (+inf) or max (-inf).
inline __m256 or_inf(__m256 v, __m256 finite) {
  return _mm256_blendv_ps(_mm256_set1_ps(INFINITY), v, finite);
}
inline __m256 or_minus_inf(__m256 v, __m256 finite) {
  return _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), v, finite);
}

// mn / mx widened by the finite lanes of v.
inline void widen(__m256& mn, __m256& mx, __m256 v, __m256 finite) {
  mn = _mm256_min_ps(mn, or_inf(v, finite));
  mx = _mm256_max_ps(mx, or_minus_inf(v, finite));
}

inline void fold(__m256 mn, __m256 mx, MinMaxAccum* acc) {
  alignas(32) float lo[8], hi[8];
  _mm256_store_ps(lo, mn);
  _mm256_store_ps(hi, mx);
  float a = acc->min, b = acc->max;
  for (int j = 0; j < 8; ++j) {
    a = lo[j] < a ? lo[j] : a;
    b = hi[j] > b ? hi[j] : b;
  }
  acc->min = a + 0.0f;
  acc->max = b + 0.0f;
}

}  // namespace

void observe_minmax_f32__avx2(const float* x, std::size_t n, MinMaxAccum* acc) noexcept {
  __m256 mn0 = _mm256_set1_ps(INFINITY), mn1 = mn0, mn2 = mn0, mn3 = mn0;
  __m256 mx0 = _mm256_set1_ps(-INFINITY), mx1 = mx0, mx2 = mx0, mx3 = mx0;
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
    const __m256 v2 = _mm256_loadu_ps(x + i + 16), v3 = _mm256_loadu_ps(x + i + 24);
    const __m256 f0 = finite_mask(v0), f1 = finite_mask(v1);
    const __m256 f2 = finite_mask(v2), f3 = finite_mask(v3);
    const __m256 all = _mm256_and_ps(_mm256_and_ps(f0, f1), _mm256_and_ps(f2, f3));
    if (_mm256_movemask_ps(all) != 0xff) {
      count_nonfinite(v0, acc);
      count_nonfinite(v1, acc);
      count_nonfinite(v2, acc);
      count_nonfinite(v3, acc);
      widen(mn0, mx0, v0, f0);
      widen(mn1, mx1, v1, f1);
      widen(mn2, mx2, v2, f2);
      widen(mn3, mx3, v3, f3);
      continue;
    }
    // All finite (the common case): plain min/max, no blends.
    mn0 = _mm256_min_ps(mn0, v0);
    mx0 = _mm256_max_ps(mx0, v0);
    mn1 = _mm256_min_ps(mn1, v1);
    mx1 = _mm256_max_ps(mx1, v1);
    mn2 = _mm256_min_ps(mn2, v2);
    mx2 = _mm256_max_ps(mx2, v2);
    mn3 = _mm256_min_ps(mn3, v3);
    mx3 = _mm256_max_ps(mx3, v3);
  }
  fold(_mm256_min_ps(_mm256_min_ps(mn0, mn1), _mm256_min_ps(mn2, mn3)),
       _mm256_max_ps(_mm256_max_ps(mx0, mx1), _mm256_max_ps(mx2, mx3)), acc);
  observe_minmax_f32__reference(x + i, n - i, acc);
}

void observe_minmax_columns_f32__avx2(const float* x, std::size_t n, float* mins, float* maxs,
                                      MinMaxAccum* acc) noexcept {
  const __m256 zero = _mm256_setzero_ps();
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 f = finite_mask(v);
    if (_mm256_movemask_ps(f) != 0xff) count_nonfinite(v, acc);
    const __m256 mn = _mm256_loadu_ps(mins + i), mx = _mm256_loadu_ps(maxs + i);
    const __m256 new_mn = _mm256_add_ps(_mm256_min_ps(mn, v), zero);
    const __m256 new_mx = _mm256_add_ps(_mm256_max_ps(mx, v), zero);
    _mm256_storeu_ps(mins + i, _mm256_blendv_ps(mn, new_mn, f));
    _mm256_storeu_ps(maxs + i, _mm256_blendv_ps(mx, new_mx, f));
  }
  observe_minmax_columns_f32__reference(x + i, n - i, mins + i, maxs + i, acc);
}

void observe_histogram_f32__avx2(const HistogramArgs& args, MinMaxAccum* acc) noexcept {
  const float* x = args.x;
  const std::size_t n = args.n;
  const __m256 inv = _mm256_set1_ps(args.inv_width);
  const __m256 lim_hi = _mm256_set1_ps(1073741824.0f), lim_lo = _mm256_set1_ps(-1073741824.0f);
  const __m256i k0 = _mm256_set1_epi32(args.k0);
  const __m256i zero = _mm256_setzero_si256();
  const __m256i top = _mm256_set1_epi32(args.bins - 1);
  const __m256i discard = _mm256_set1_epi32(args.bins);
  const int32_t s = static_cast<int32_t>(args.stride);
  // Lane j increments sub-histogram j % 4 (see the AVX-512 kernel).
  const __m256i lane_offset = _mm256_setr_epi32(0, s, 2 * s, 3 * s, 0, s, 2 * s, 3 * s);
  uint32_t* counts = args.counts;
  __m256 mn = _mm256_set1_ps(INFINITY), mx = _mm256_set1_ps(-INFINITY);
  alignas(32) int32_t idx[16];

  auto bins_of = [&](__m256 v, __m256 f) {
    __m256 t = _mm256_mul_ps(v, inv);
    t = _mm256_min_ps(_mm256_max_ps(t, lim_lo), lim_hi);
    // floor then truncating convert: exact for |t| <= 2^30.
    __m256i b = _mm256_cvttps_epi32(_mm256_floor_ps(t));
    b = _mm256_sub_epi32(b, k0);
    b = _mm256_min_epi32(_mm256_max_epi32(b, zero), top);
    b = _mm256_blendv_epi8(discard, b, _mm256_castps_si256(f));
    return _mm256_add_epi32(b, lane_offset);
  };

  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
    const __m256 f0 = finite_mask(v0), f1 = finite_mask(v1);
    if (_mm256_movemask_ps(_mm256_and_ps(f0, f1)) != 0xff) {
      count_nonfinite(v0, acc);
      count_nonfinite(v1, acc);
    }
    widen(mn, mx, v0, f0);
    widen(mn, mx, v1, f1);
    _mm256_store_si256(reinterpret_cast<__m256i*>(idx), bins_of(v0, f0));
    _mm256_store_si256(reinterpret_cast<__m256i*>(idx + 8), bins_of(v1, f1));
    add_bins<16>(counts, idx);
  }
  fold(mn, mx, acc);
  histogram_tail(args, i, acc);
}

}  // namespace sparq::detail
