// ARMv8 NEON (Advanced SIMD) quantize / dequantize kernels. Bit-exact with
// src/kernels/reference/quantize_reference.cpp (semantics in
// src/kernels/quantize_kernels.hpp). Dot product and i8mm add nothing to
// these element-wise conversions, so the neondot and neoni8mm tables reuse
// them.
//
// NEON maps the reference one instruction per step: FMUL (never fused with
// anything), a self-compare to zero NaN lanes, FMAX/FMIN for the clamp in the
// float domain, FCVTNS (round to nearest, ties to even, whatever the FPCR
// says) and XTN narrowing, which keeps the low byte: the values already lie in
// the storage type, so the byte is right for int8 and uint8 alike.
//
// Tails (n not a multiple of 16 or 4) go through a small stack buffer, so no
// byte outside [0, n) is read or written and no scalar copy of the arithmetic
// exists that could drift from the vector one.
#include <arm_neon.h>

#include <cstring>

#include "kernels/quantize_kernels.hpp"

namespace sparq::detail {
namespace {

struct QConst {
  float32x4_t inv, lo, hi;
  int32x4_t zp;
};

QConst make_const(float inv_scale, int32_t zp, int32_t qmin, int32_t qmax) {
  return {vdupq_n_f32(inv_scale), vdupq_n_f32(static_cast<float>(qmin - zp)),
          vdupq_n_f32(static_cast<float>(qmax - zp)), vdupq_n_s32(zp)};
}

// 4 floats -> 4 int32 in [qmin, qmax]. t = x * inv is zeroed where it is NaN
// (as the reference does) before the clamp, because FMAX/FMIN propagate NaN.
inline int32x4_t quantize4(float32x4_t x, const QConst& k) {
  float32x4_t t = vmulq_f32(x, k.inv);
  t = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(t), vceqq_f32(t, t)));
  t = vminq_f32(vmaxq_f32(t, k.lo), k.hi);
  return vaddq_s32(vcvtnq_s32_f32(t), k.zp);
}

inline uint8x16_t narrow16(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
  const int16x8_t ab = vmovn_high_s32(vmovn_s32(a), b);
  const int16x8_t cd = vmovn_high_s32(vmovn_s32(c), d);
  return vreinterpretq_u8_s8(vmovn_high_s16(vmovn_s16(ab), cd));
}

inline uint8x16_t quantize16(const float* src, const QConst& k) {
  return narrow16(quantize4(vld1q_f32(src), k), quantize4(vld1q_f32(src + 4), k),
                  quantize4(vld1q_f32(src + 8), k), quantize4(vld1q_f32(src + 12), k));
}

void quantize_any(const float* src, uint8_t* dst, std::size_t n, const QConst& k) {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) vst1q_u8(dst + i, quantize16(src + i, k));
  if (i < n) {
    float in[16] = {};
    uint8_t out[16];
    std::memcpy(in, src + i, (n - i) * sizeof(float));
    vst1q_u8(out, quantize16(in, k));
    std::memcpy(dst + i, out, n - i);
  }
}

// 16 bytes -> 4 x int32, sign- or zero-extended.
template <bool kSigned>
inline void widen16(uint8x16_t b, int32x4_t q[4]) {
  int16x8_t lo, hi;
  if constexpr (kSigned) {
    lo = vmovl_s8(vget_low_s8(vreinterpretq_s8_u8(b)));
    hi = vmovl_high_s8(vreinterpretq_s8_u8(b));
  } else {
    lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(b)));
    hi = vreinterpretq_s16_u16(vmovl_high_u8(b));
  }
  q[0] = vmovl_s16(vget_low_s16(lo));
  q[1] = vmovl_high_s16(lo);
  q[2] = vmovl_s16(vget_low_s16(hi));
  q[3] = vmovl_high_s16(hi);
}

// x = float(q - zp) * scale: the subtraction is exact in int32, the int32 ->
// float conversion is exact (|q - zp| < 2^24) and the multiply rounds once.
template <bool kSigned>
inline void dequantize16(const uint8_t* src, float* dst, float32x4_t s, int32x4_t z) {
  int32x4_t q[4];
  widen16<kSigned>(vld1q_u8(src), q);
  for (int r = 0; r < 4; ++r)
    vst1q_f32(dst + 4 * r, vmulq_f32(vcvtq_f32_s32(vsubq_s32(q[r], z)), s));
}

template <bool kSigned>
void dequantize_any(const uint8_t* src, float* dst, std::size_t n, float scale, int32_t zp) {
  const float32x4_t s = vdupq_n_f32(scale);
  const int32x4_t z = vdupq_n_s32(zp);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) dequantize16<kSigned>(src + i, dst + i, s, z);
  if (i < n) {
    uint8_t in[16] = {};
    float out[16];
    std::memcpy(in, src + i, n - i);
    dequantize16<kSigned>(in, out, s, z);
    std::memcpy(dst + i, out, (n - i) * sizeof(float));
  }
}

// Channel is the last axis (inner == 1): every element has its own
// parameters, loaded as vectors next to the data, 4 at a time.
inline int32x4_t quantize4_params(const float* x, const float* inv, const int32_t* zp,
                                  int32x4_t qmin, int32x4_t qmax) {
  const int32x4_t z = vld1q_s32(zp);
  const QConst k{vld1q_f32(inv), vcvtq_f32_s32(vsubq_s32(qmin, z)),
                 vcvtq_f32_s32(vsubq_s32(qmax, z)), z};
  return quantize4(vld1q_f32(x), k);
}

void quantize_channel_inner1(const QuantizeChannelArgs& a) {
  auto* dst = static_cast<uint8_t*>(a.dst);
  const int32x4_t qmin = vdupq_n_s32(a.qmin), qmax = vdupq_n_s32(a.qmax);
  auto block16 = [&](const float* x, const float* inv, const int32_t* zp, uint8_t* out) {
    vst1q_u8(out, narrow16(quantize4_params(x, inv, zp, qmin, qmax),
                           quantize4_params(x + 4, inv + 4, zp + 4, qmin, qmax),
                           quantize4_params(x + 8, inv + 8, zp + 8, qmin, qmax),
                           quantize4_params(x + 12, inv + 12, zp + 12, qmin, qmax)));
  };
  const std::size_t n = a.channels;
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) block16(a.src + i, a.inv_scales + i, a.zero_points + i, dst + i);
  if (i < n) {
    const std::size_t left = n - i;
    float x[16] = {}, inv[16] = {};
    int32_t zp[16] = {};
    uint8_t out[16];
    std::memcpy(x, a.src + i, left * sizeof(float));
    std::memcpy(inv, a.inv_scales + i, left * sizeof(float));
    std::memcpy(zp, a.zero_points + i, left * sizeof(int32_t));
    block16(x, inv, zp, out);
    std::memcpy(dst + i, out, left);
  }
}

template <bool kSigned>
void dequantize_channel_inner1(const DequantizeChannelArgs& a) {
  const auto* src = static_cast<const uint8_t*>(a.src);
  auto block16 = [&](const uint8_t* q8, const float* scale, const int32_t* zp, float* out) {
    int32x4_t q[4];
    widen16<kSigned>(vld1q_u8(q8), q);
    for (int r = 0; r < 4; ++r) {
      const float32x4_t x = vcvtq_f32_s32(vsubq_s32(q[r], vld1q_s32(zp + 4 * r)));
      vst1q_f32(out + 4 * r, vmulq_f32(x, vld1q_f32(scale + 4 * r)));
    }
  };
  const std::size_t n = a.channels;
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) block16(src + i, a.scales + i, a.zero_points + i, a.dst + i);
  if (i < n) {
    const std::size_t left = n - i;
    uint8_t q8[16] = {};
    float scale[16] = {}, out[16];
    int32_t zp[16] = {};
    std::memcpy(q8, src + i, left);
    std::memcpy(scale, a.scales + i, left * sizeof(float));
    std::memcpy(zp, a.zero_points + i, left * sizeof(int32_t));
    block16(q8, scale, zp, out);
    std::memcpy(a.dst + i, out, left * sizeof(float));
  }
}

void quantize_tensor(const QuantizeTensorArgs& a) {
  quantize_any(a.src, static_cast<uint8_t*>(a.dst), a.n,
               make_const(a.inv_scale, a.zero_point, a.qmin, a.qmax));
}

template <bool kSigned>
void dequantize_tensor(const DequantizeTensorArgs& a) {
  dequantize_any<kSigned>(static_cast<const uint8_t*>(a.src), a.dst, a.n, a.scale, a.zero_point);
}

void quantize_channel(const QuantizeChannelArgs& a) {
  if (a.inner == 1) return quantize_channel_inner1(a);
  auto* dst = static_cast<uint8_t*>(a.dst);
  for (std::size_t c = 0; c < a.channels; ++c) {
    quantize_any(a.src + c * a.inner, dst + c * a.inner, a.inner,
                 make_const(a.inv_scales[c], a.zero_points[c], a.qmin, a.qmax));
  }
}

template <bool kSigned>
void dequantize_channel(const DequantizeChannelArgs& a) {
  if (a.inner == 1) return dequantize_channel_inner1<kSigned>(a);
  const auto* src = static_cast<const uint8_t*>(a.src);
  for (std::size_t c = 0; c < a.channels; ++c) {
    dequantize_any<kSigned>(src + c * a.inner, a.dst + c * a.inner, a.inner, a.scales[c],
                            a.zero_points[c]);
  }
}

}  // namespace

void quantize_s8__neon(const QuantizeTensorArgs& a) noexcept { quantize_tensor(a); }
void quantize_u8__neon(const QuantizeTensorArgs& a) noexcept { quantize_tensor(a); }
void dequantize_s8__neon(const DequantizeTensorArgs& a) noexcept { dequantize_tensor<true>(a); }
void dequantize_u8__neon(const DequantizeTensorArgs& a) noexcept { dequantize_tensor<false>(a); }
void quantize_channel_s8__neon(const QuantizeChannelArgs& a) noexcept { quantize_channel(a); }
void quantize_channel_u8__neon(const QuantizeChannelArgs& a) noexcept { quantize_channel(a); }
void dequantize_channel_s8__neon(const DequantizeChannelArgs& a) noexcept {
  dequantize_channel<true>(a);
}
void dequantize_channel_u8__neon(const DequantizeChannelArgs& a) noexcept {
  dequantize_channel<false>(a);
}

}  // namespace sparq::detail
