// Scalar observer kernels: the reference every SIMD version must match bit
// for bit (see observe_kernels.hpp for the contracts).
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/observe_kernels.hpp"

namespace sparq::detail {
namespace {

// Bit tests instead of std::isnan/isfinite: they cannot be folded away by
// -ffast-math style flags, and they are what the SIMD kernels do.
inline uint32_t abs_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u & 0x7fffffffu;
}
constexpr uint32_t kInfBits = 0x7f800000u;

// True for a finite v; NaN and +-Inf are counted in acc instead.
inline bool finite_or_counted(float v, MinMaxAccum* acc) {
  const uint32_t a = abs_bits(v);
  if (a < kInfBits) return true;
  if (a > kInfBits) {
    ++acc->nan_count;
  } else {
    ++acc->inf_count;
  }
  return false;
}

inline void widen(float v, float& mn, float& mx) {
  mn = v < mn ? v : mn;
  mx = v > mx ? v : mx;
}

// +0.0 for a zero result whatever the order of -0.0 and +0.0 in x.
inline void store_range(float mn, float mx, MinMaxAccum* acc) {
  acc->min = mn + 0.0f;
  acc->max = mx + 0.0f;
}

}  // namespace

void observe_minmax_f32__reference(const float* x, std::size_t n, MinMaxAccum* acc) noexcept {
  float mn = acc->min, mx = acc->max;
  for (std::size_t i = 0; i < n; ++i) {
    if (finite_or_counted(x[i], acc)) widen(x[i], mn, mx);
  }
  store_range(mn, mx, acc);
}

void observe_minmax_columns_f32__reference(const float* x, std::size_t n, float* mins, float* maxs,
                                           MinMaxAccum* acc) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (!finite_or_counted(v, acc)) continue;
    mins[i] = (v < mins[i] ? v : mins[i]) + 0.0f;
    maxs[i] = (v > maxs[i] ? v : maxs[i]) + 0.0f;
  }
}

void observe_histogram_f32__reference(const HistogramArgs& args, MinMaxAccum* acc) noexcept {
  float mn = acc->min, mx = acc->max;
  uint32_t* counts = args.counts;
  for (std::size_t i = 0; i < args.n; ++i) {
    const float v = args.x[i];
    if (!finite_or_counted(v, acc)) continue;
    widen(v, mn, mx);
    float t = v * args.inv_width;
    t = t < -1073741824.0f ? -1073741824.0f : (t > 1073741824.0f ? 1073741824.0f : t);
    int32_t bin = static_cast<int32_t>(std::floor(t)) - args.k0;
    bin = bin < 0 ? 0 : (bin >= args.bins ? args.bins - 1 : bin);
    ++counts[bin];
  }
  store_range(mn, mx, acc);
}

}  // namespace sparq::detail
