// NEON requantizing output stage, bit-exact with sparq::requantize() (and
// shared by the neon, neondot and neoni8mm tables). AArch64 has an
// instruction for almost every step of the gemmlowp / TFLite arithmetic:
//   bias add, saturating           SQADD
//   x << left, saturating          SQSHL (per-lane shift from a register)
//   rounding doubling high mul     SQRDMULH: floor((2*x*m + 2^31) / 2^32)
//                                  = floor((x*m + 2^30) / 2^31), the
//                                  reference's value for multiplier >= 0
//   rounding divide by 2^right     SRSHL by -right rounds ties up; ties of
//                                  negative values must go away from zero,
//                                  so 1 is subtracted from negative x first
//                                  (TFLite's NEON RoundingDivideByPOT fixup)
//   + zero point, clamp, narrow    SQADD, SMAX/SMIN, XTN
#include <arm_neon.h>

#include <cstring>

#include "kernels/gemm_kernels.hpp"
#include "kernels/neon/gemm_neon_common.hpp"

namespace sparq::detail {
namespace {

struct ColParams {
  int32x4_t m, left, neg_right, bias;
};

inline int32x4_t requantize4(int32x4_t x, const ColParams& c, bool has_bias, int32x4_t zp,
                             int32x4_t lo, int32x4_t hi) {
  if (has_bias) x = vqaddq_s32(x, c.bias);
  x = vqrdmulhq_s32(vqshlq_s32(x, c.left), c.m);
  // neg_right is 0 or negative: its sign bit selects lanes that shift.
  const int32x4_t fixup = vshrq_n_s32(vandq_s32(x, c.neg_right), 31);
  x = vrshlq_s32(vqaddq_s32(x, fixup), c.neg_right);
  return vminq_s32(vmaxq_s32(vqaddq_s32(x, zp), lo), hi);
}

// 8 columns at a time; a partial last block goes through zero-filled
// buffers so nothing outside the tile is read or written.
void requantize_tile(const GemmRequantizeParams& p) noexcept {
  const int32x4_t zp = vdupq_n_s32(p.zero_point);
  const int32x4_t lo = vdupq_n_s32(p.qmin), hi = vdupq_n_s32(p.qmax);
  const bool has_bias = p.bias != nullptr;
  auto* out = static_cast<uint8_t*>(p.out);
  for (int j = 0; j < p.cols; j += 8) {
    const int n = p.cols - j < 8 ? p.cols - j : 8;
    int32x4_t m[2], s[2], b[2] = {vdupq_n_s32(0), vdupq_n_s32(0)};
    neon::load_s32<2>(p.multiplier + j, m, n);
    neon::load_s32<2>(p.shift + j, s, n);
    if (has_bias) neon::load_s32<2>(p.bias + j, b, n);
    ColParams c[2];
    for (int h = 0; h < 2; ++h) {
      c[h] = {m[h], vmaxq_s32(s[h], vdupq_n_s32(0)), vminq_s32(s[h], vdupq_n_s32(0)), b[h]};
    }
    for (int i = 0; i < p.rows; ++i) {
      int32x4_t x[2];
      neon::load_s32<2>(p.acc + i * p.ld_acc + j, x, n);
      const int16x8_t y16 = vcombine_s16(vmovn_s32(requantize4(x[0], c[0], has_bias, zp, lo, hi)),
                                         vmovn_s32(requantize4(x[1], c[1], has_bias, zp, lo, hi)));
      // The values lie in [qmin, qmax] inside the storage type: the low
      // byte is the right uint8 or int8 bit pattern.
      const uint8x8_t y8 = vreinterpret_u8_s8(vmovn_s16(y16));
      uint8_t* dst = out + i * p.ld_out + j;
      if (n == 8) {
        vst1_u8(dst, y8);
      } else {
        uint8_t tmp[8];
        vst1_u8(tmp, y8);
        std::memcpy(dst, tmp, static_cast<std::size_t>(n));
      }
    }
  }
}

}  // namespace

// A residual input goes through the scalar definition (no NEON form of it yet).
void gemm_requantize_u8__neon(const GemmRequantizeParams& p) noexcept {
  p.residual != nullptr ? gemm_requantize_u8__scalar(p) : requantize_tile(p);
}
void gemm_requantize_s8__neon(const GemmRequantizeParams& p) noexcept {
  p.residual != nullptr ? gemm_requantize_s8__scalar(p) : requantize_tile(p);
}

}  // namespace sparq::detail
