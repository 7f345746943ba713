// Dynamic quantization of activation rows (linear_dynamic), scalar form:
// the definition the SIMD versions reproduce bit for bit.
#include <cstring>

#include "kernels/gemm_kernels.hpp"

namespace sparq::detail {

bool gemm_range__scalar(const float* x, int64_t n, float* min, float* max) noexcept {
  uint32_t special = 0;
  float mn = *min;
  float mx = *max;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, x + i, 4);
    special |= static_cast<uint32_t>((bits & 0x7F800000u) == 0x7F800000u);
    mn = x[i] < mn ? x[i] : mn;
    mx = x[i] > mx ? x[i] : mx;
  }
  *min = mn;
  *max = mx;
  return special == 0;
}

// q = clamp(round_half_even(x / scale) + zp, 0, 255), as qparams.hpp defines
// it. t is clamped to +-512 first (cannot change the clamped result for zp
// in [0, 255]) so the magic-number rounding (exact for |t| < 2^22) applies.
void gemm_quantize__scalar(const GemmQuantizeParams& p) noexcept {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  const float fzp = static_cast<float>(p.zero_point);
  for (int64_t i = 0; i < p.n; ++i) {
    float t = p.x[i] / p.scale;
    t = t < -512.0f ? -512.0f : (t > 512.0f ? 512.0f : t);
    float r = (t + kMagic) - kMagic;
    r += fzp;
    r = r < 0.0f ? 0.0f : (r > 255.0f ? 255.0f : r);
    p.q[i] = static_cast<uint8_t>(static_cast<int32_t>(r));
  }
}

}  // namespace sparq::detail
