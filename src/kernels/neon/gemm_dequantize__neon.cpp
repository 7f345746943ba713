// NEON dequantizing output stage (shared by the neon, neondot and neoni8mm
// tables): y = fma(float(acc), row_scale * col_scale, bias), then ReLU,
// exactly as the scalar stage: SCVTF, FMUL, FMLA (fused, one rounding like
// std::fma). ReLU keeps y where y > 0 and writes +0.0 elsewhere (so NaN and
// -0.0 become +0.0 as in the scalar `y > 0 ? y : 0`; FMAX would keep NaN).
#include <arm_neon.h>

#include <cstring>

#include "kernels/gemm_kernels.hpp"
#include "kernels/neon/gemm_neon_common.hpp"

namespace sparq::detail {
namespace {

// Loads n (<= 4) floats, zero-filling the rest.
inline float32x4_t load_f32(const float* p, int n) {
  if (n == 4) return vld1q_f32(p);
  float tmp[4] = {};
  std::memcpy(tmp, p, static_cast<std::size_t>(n) * sizeof(float));
  return vld1q_f32(tmp);
}

}  // namespace

void gemm_dequantize__neon(const GemmDequantizeParams& p) noexcept {
  const float32x4_t zero = vdupq_n_f32(0.0f);
  for (int j = 0; j < p.cols; j += 4) {
    const int n = p.cols - j < 4 ? p.cols - j : 4;
    const float32x4_t cs = load_f32(p.col_scale + j, n);
    const float32x4_t b = p.bias != nullptr ? load_f32(p.bias + j, n) : zero;
    for (int i = 0; i < p.rows; ++i) {
      const float32x4_t scale = vmulq_f32(vdupq_n_f32(p.row_scale[i]), cs);
      int32x4_t acc;
      neon::load_s32<1>(p.acc + i * p.ld_acc + j, &acc, n);
      float32x4_t y = vfmaq_f32(b, vcvtq_f32_s32(acc), scale);
      if (p.relu) {
        y = vreinterpretq_f32_u32(vandq_u32(vcgtq_f32(y, zero), vreinterpretq_u32_f32(y)));
      }
      float* dst = p.out + i * p.ld_out + j;
      if (n == 4) {
        vst1q_f32(dst, y);
      } else {
        float tmp[4];
        vst1q_f32(tmp, y);
        std::memcpy(dst, tmp, static_cast<std::size_t>(n) * sizeof(float));
      }
    }
  }
}

}  // namespace sparq::detail
