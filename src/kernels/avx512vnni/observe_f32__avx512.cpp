// AVX-512 observer kernels (contracts in observe_kernels.hpp). Bit-identical
// to the scalar reference: min/max are exact, non-finite lanes are masked
// out, and the bin index uses the same exact steps. Tails (< one vector
// block) run the reference kernel, which is bit-identical by definition.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "kernels/observe_kernels.hpp"

namespace sparq::detail {
namespace {

#include "kernels/observe_simd.inc"

inline __mmask16 finite_mask(__m512 v) {
  // Ordered compare: false for NaN; |v| < inf is false for +-Inf.
  return _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(INFINITY), _CMP_LT_OQ);
}

inline void count_nonfinite(__m512 v, MinMaxAccum* acc) {
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  const __mmask16 inf = _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(INFINITY), _CMP_EQ_OQ);
  acc->nan_count += __builtin_popcount(static_cast<unsigned>(nan));
  acc->inf_count += __builtin_popcount(static_cast<unsigned>(inf));
}

// mn / mx widened by the lanes of v that `finite` selects.
inline void widen(__m512& mn, __m512& mx, __m512 v, __mmask16 finite) {
  mn = _mm512_mask_min_ps(mn, finite, mn, v);
  mx = _mm512_mask_max_ps(mx, finite, mx, v);
}

inline void fold(__m512 mn, __m512 mx, MinMaxAccum* acc) {
  const float lo = _mm512_reduce_min_ps(mn), hi = _mm512_reduce_max_ps(mx);
  acc->min = (lo < acc->min ? lo : acc->min) + 0.0f;
  acc->max = (hi > acc->max ? hi : acc->max) + 0.0f;
}

}  // namespace

void observe_minmax_f32__avx512(const float* x, std::size_t n, MinMaxAccum* acc) noexcept {
  // Four independent accumulator pairs hide the min/max latency; the loop
  // is load-bound (64 floats = 256 bytes per iteration).
  __m512 mn0 = _mm512_set1_ps(INFINITY), mn1 = mn0, mn2 = mn0, mn3 = mn0;
  __m512 mx0 = _mm512_set1_ps(-INFINITY), mx1 = mx0, mx2 = mx0, mx3 = mx0;
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
    const __m512 v2 = _mm512_loadu_ps(x + i + 32), v3 = _mm512_loadu_ps(x + i + 48);
    const __mmask16 k0 = finite_mask(v0), k1 = finite_mask(v1);
    const __mmask16 k2 = finite_mask(v2), k3 = finite_mask(v3);
    if (static_cast<uint16_t>(k0 & k1 & k2 & k3) != 0xffff) {
      count_nonfinite(v0, acc);
      count_nonfinite(v1, acc);
      count_nonfinite(v2, acc);
      count_nonfinite(v3, acc);
    }
    widen(mn0, mx0, v0, k0);
    widen(mn1, mx1, v1, k1);
    widen(mn2, mx2, v2, k2);
    widen(mn3, mx3, v3, k3);
  }
  fold(_mm512_min_ps(_mm512_min_ps(mn0, mn1), _mm512_min_ps(mn2, mn3)),
       _mm512_max_ps(_mm512_max_ps(mx0, mx1), _mm512_max_ps(mx2, mx3)), acc);
  observe_minmax_f32__reference(x + i, n - i, acc);
}

void observe_minmax_columns_f32__avx512(const float* x, std::size_t n, float* mins, float* maxs,
                                        MinMaxAccum* acc) noexcept {
  const __m512 zero = _mm512_setzero_ps();
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    const __mmask16 k = finite_mask(v);
    if (k != 0xffff) count_nonfinite(v, acc);
    const __m512 mn = _mm512_loadu_ps(mins + i), mx = _mm512_loadu_ps(maxs + i);
    // Only lanes with a finite value change (and are canonicalised to +0.0
    // when zero), exactly as the reference does.
    _mm512_storeu_ps(mins + i, _mm512_mask_add_ps(mn, k, _mm512_min_ps(mn, v), zero));
    _mm512_storeu_ps(maxs + i, _mm512_mask_add_ps(mx, k, _mm512_max_ps(mx, v), zero));
  }
  observe_minmax_columns_f32__reference(x + i, n - i, mins + i, maxs + i, acc);
}

void observe_histogram_f32__avx512(const HistogramArgs& args, MinMaxAccum* acc) noexcept {
  const float* x = args.x;
  const std::size_t n = args.n;
  const __m512 inv = _mm512_set1_ps(args.inv_width);
  const __m512 lim_hi = _mm512_set1_ps(1073741824.0f), lim_lo = _mm512_set1_ps(-1073741824.0f);
  const __m512i k0 = _mm512_set1_epi32(args.k0);
  const __m512i zero = _mm512_setzero_si512();
  const __m512i top = _mm512_set1_epi32(args.bins - 1);
  const __m512i discard = _mm512_set1_epi32(args.bins);
  // Lane j increments sub-histogram j % 4: consecutive equal bins (smooth
  // or constant data) then hit different addresses, so an increment does
  // not wait for the previous one's store to be forwarded.
  const int32_t s = static_cast<int32_t>(args.stride);
  const __m512i lane_offset = _mm512_setr_epi32(0, s, 2 * s, 3 * s, 0, s, 2 * s, 3 * s, 0, s, 2 * s,
                                                3 * s, 0, s, 2 * s, 3 * s);
  uint32_t* counts = args.counts;
  __m512 mn = _mm512_set1_ps(INFINITY), mx = _mm512_set1_ps(-INFINITY);
  alignas(64) int32_t idx[32];

  auto bins_of = [&](__m512 v, __mmask16 k) {
    __m512 t = _mm512_mul_ps(v, inv);
    t = _mm512_min_ps(_mm512_max_ps(t, lim_lo), lim_hi);
    __m512i b = _mm512_cvt_roundps_epi32(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    b = _mm512_sub_epi32(b, k0);
    b = _mm512_min_epi32(_mm512_max_epi32(b, zero), top);
    b = _mm512_mask_mov_epi32(discard, k, b);
    return _mm512_add_epi32(b, lane_offset);
  };

  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
    const __mmask16 f0 = finite_mask(v0), f1 = finite_mask(v1);
    if (static_cast<uint16_t>(f0 & f1) != 0xffff) {
      count_nonfinite(v0, acc);
      count_nonfinite(v1, acc);
    }
    widen(mn, mx, v0, f0);
    widen(mn, mx, v1, f1);
    _mm512_store_si512(idx, bins_of(v0, f0));
    _mm512_store_si512(idx + 16, bins_of(v1, f1));
    add_bins<32>(counts, idx);
  }
  fold(mn, mx, acc);
  histogram_tail(args, i, acc);
}

}  // namespace sparq::detail
