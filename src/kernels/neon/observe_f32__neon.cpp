// NEON observer kernels (contracts in observe_kernels.hpp); the shape of the
// AVX2 kernels with 128-bit vectors. Bit-identical to the scalar reference;
// tails and blocks containing NaN/Inf are counted by scalar code.
#include <arm_neon.h>

#include <cmath>
#include <cstdint>

#include "kernels/observe_kernels.hpp"

namespace sparq::detail {
namespace {

// All-ones lanes where v is finite (|v| < inf is false for NaN and +-Inf).
inline uint32x4_t finite_mask(float32x4_t v) {
  return vcltq_f32(vabsq_f32(v), vdupq_n_f32(INFINITY));
}

inline bool all_set(uint32x4_t m) { return vminvq_u32(m) == 0xffffffffu; }

inline void count_nonfinite(const float* x, std::size_t n, MinMaxAccum* acc) {
  for (std::size_t j = 0; j < n; ++j) {
    if (std::isnan(x[j])) {
      ++acc->nan_count;
    } else if (std::isinf(x[j])) {
      ++acc->inf_count;
    }
  }
}

inline float32x4_t or_inf(float32x4_t v, uint32x4_t f) {
  return vbslq_f32(f, v, vdupq_n_f32(INFINITY));
}
inline float32x4_t or_minus_inf(float32x4_t v, uint32x4_t f) {
  return vbslq_f32(f, v, vdupq_n_f32(-INFINITY));
}

inline void fold(float32x4_t mn, float32x4_t mx, MinMaxAccum* acc) {
  const float lo = vminvq_f32(mn), hi = vmaxvq_f32(mx);
  acc->min = (lo < acc->min ? lo : acc->min) + 0.0f;
  acc->max = (hi > acc->max ? hi : acc->max) + 0.0f;
}

}  // namespace

void observe_minmax_f32__neon(const float* x, std::size_t n, MinMaxAccum* acc) noexcept {
  float32x4_t mn0 = vdupq_n_f32(INFINITY), mn1 = mn0;
  float32x4_t mx0 = vdupq_n_f32(-INFINITY), mx1 = mx0;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t v0 = vld1q_f32(x + i), v1 = vld1q_f32(x + i + 4);
    const uint32x4_t f0 = finite_mask(v0), f1 = finite_mask(v1);
    if (!all_set(vandq_u32(f0, f1))) count_nonfinite(x + i, 8, acc);
    mn0 = vminq_f32(mn0, or_inf(v0, f0));
    mx0 = vmaxq_f32(mx0, or_minus_inf(v0, f0));
    mn1 = vminq_f32(mn1, or_inf(v1, f1));
    mx1 = vmaxq_f32(mx1, or_minus_inf(v1, f1));
  }
  fold(vminq_f32(mn0, mn1), vmaxq_f32(mx0, mx1), acc);
  observe_minmax_f32__reference(x + i, n - i, acc);
}

void observe_minmax_columns_f32__neon(const float* x, std::size_t n, float* mins, float* maxs,
                                      MinMaxAccum* acc) noexcept {
  const float32x4_t zero = vdupq_n_f32(0.0f);
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t v = vld1q_f32(x + i);
    const uint32x4_t f = finite_mask(v);
    if (!all_set(f)) count_nonfinite(x + i, 4, acc);
    const float32x4_t mn = vld1q_f32(mins + i), mx = vld1q_f32(maxs + i);
    vst1q_f32(mins + i, vbslq_f32(f, vaddq_f32(vminq_f32(mn, v), zero), mn));
    vst1q_f32(maxs + i, vbslq_f32(f, vaddq_f32(vmaxq_f32(mx, v), zero), mx));
  }
  observe_minmax_columns_f32__reference(x + i, n - i, mins + i, maxs + i, acc);
}

void observe_histogram_f32__neon(const HistogramArgs& args, MinMaxAccum* acc) noexcept {
  const float* x = args.x;
  const std::size_t n = args.n;
  const float32x4_t inv = vdupq_n_f32(args.inv_width);
  const float32x4_t lim_hi = vdupq_n_f32(1073741824.0f), lim_lo = vdupq_n_f32(-1073741824.0f);
  const int32x4_t k0 = vdupq_n_s32(args.k0);
  const int32x4_t zero = vdupq_n_s32(0);
  const int32x4_t top = vdupq_n_s32(args.bins - 1);
  const int32x4_t discard = vdupq_n_s32(args.bins);
  const int32_t s = static_cast<int32_t>(args.stride);
  // Lane j increments sub-histogram j (see the AVX-512 kernel).
  const int32_t offsets[4] = {0, s, 2 * s, 3 * s};
  const int32x4_t lane_offset = vld1q_s32(offsets);
  uint32_t* counts = args.counts;
  float32x4_t mn = vdupq_n_f32(INFINITY), mx = vdupq_n_f32(-INFINITY);
  int32_t idx[8];

  auto bins_of = [&](float32x4_t v, uint32x4_t f) {
    float32x4_t t = vmulq_f32(v, inv);
    t = vminq_f32(vmaxq_f32(t, lim_lo), lim_hi);
    int32x4_t b = vcvtq_s32_f32(vrndmq_f32(t));  // floor, then exact convert
    b = vsubq_s32(b, k0);
    b = vminq_s32(vmaxq_s32(b, zero), top);
    b = vbslq_s32(f, b, discard);
    return vaddq_s32(b, lane_offset);
  };

  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t v0 = vld1q_f32(x + i), v1 = vld1q_f32(x + i + 4);
    const uint32x4_t f0 = finite_mask(v0), f1 = finite_mask(v1);
    if (!all_set(vandq_u32(f0, f1))) count_nonfinite(x + i, 8, acc);
    mn = vminq_f32(mn, or_inf(v0, f0));
    mx = vmaxq_f32(mx, or_minus_inf(v0, f0));
    mn = vminq_f32(mn, or_inf(v1, f1));
    mx = vmaxq_f32(mx, or_minus_inf(v1, f1));
    vst1q_s32(idx, bins_of(v0, f0));
    vst1q_s32(idx + 4, bins_of(v1, f1));
    for (int j = 0; j < 8; ++j) ++counts[idx[j]];
  }
  fold(mn, mx, acc);
  HistogramArgs tail = args;
  tail.x = x + i;
  tail.n = n - i;
  observe_histogram_f32__reference(tail, acc);
}

}  // namespace sparq::detail
