// ARMv8.2 dot-product direct 2:4 sparse microkernel: up to 4 rows x 8
// columns, one step = 8 inputs, 4 kept values per channel.
//
// Per step: 32 bytes of kept values (two int8x16: channels 0-3 and 4-7, a
// 4-byte word each) and 8 index bytes. The index bytes become TBL controls
// once per step (shared by the rows): TBL copies channel c's byte into its 4
// lanes, USHL by (0, -2, -4, -6) puts index t in bits 0..1 of lane t, AND 3,
// ORR 4 for the second group's two lanes. Per row, TBL gathers each
// channel's 4 activations from the step's 8 bytes (duplicated into a q
// register) and one SDOT multiplies them with the values.
//
// Signedness as in gemm_u8s8s32_ukernel_8x8c4__neondot: the packed
// activations are u8; a ^ 0x80 read as int8 is a - 128, so
//   sum a * w = sum (a - 128) * w + 128 * sum w
// and the kernel adds (128 - zero_point) * col_sums, or computes the column
// sums itself (SDOT against ones) when the driver passes none (K chunks).
#include <arm_neon.h>

#include "kernels/dispatch_rows.hpp"
#include "kernels/neon/gemm_neon_common.hpp"
#include "kernels/sparse_gemm_kernels.hpp"

namespace sparq::detail {
namespace {

template <int MR, bool kOwnColSums>
void ukernel(const SpgemmUkernelParams& p) noexcept {
  int32x4_t acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = vdupq_n_s32(0);
  int32x4_t own_cs[2] = {vdupq_n_s32(0), vdupq_n_s32(0)};
  const int8x16_t ones = vdupq_n_s8(1);
  const uint8x8_t flip = vdup_n_u8(0x80);
  const uint8_t rep_bytes[16] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3};
  const uint8x16_t rep0 = vld1q_u8(rep_bytes);
  const uint8x16_t rep1 = vaddq_u8(rep0, vdupq_n_u8(4));
  const int8_t shift_bytes[16] = {0, -2, -4, -6, 0, -2, -4, -6, 0, -2, -4, -6, 0, -2, -4, -6};
  const int8x16_t shifts = vld1q_s8(shift_bytes);
  const uint8x16_t three = vdupq_n_u8(3);
  const uint32x4_t group = vdupq_n_u32(0x04040000u);
  const uint8_t* a = p.a;
  const int8_t* w = p.w;
  for (int64_t s = p.steps; s > 0; --s) {
    __builtin_prefetch(w + 16 * 40);
    const int8x16_t v0 = vld1q_s8(w);
    const int8x16_t v1 = vld1q_s8(w + 16);
    if constexpr (kOwnColSums) {
      own_cs[0] = vdotq_s32(own_cs[0], v0, ones);
      own_cs[1] = vdotq_s32(own_cs[1], v1, ones);
    }
    const uint8x16_t meta =
        vcombine_u8(vld1_u8(reinterpret_cast<const uint8_t*>(w + 32)), vdup_n_u8(0));
    const uint8x16_t i0 = vorrq_u8(vandq_u8(vshlq_u8(vqtbl1q_u8(meta, rep0), shifts), three),
                                   vreinterpretq_u8_u32(group));
    const uint8x16_t i1 = vorrq_u8(vandq_u8(vshlq_u8(vqtbl1q_u8(meta, rep1), shifts), three),
                                   vreinterpretq_u8_u32(group));
    for (int i = 0; i < MR; ++i) {
      const uint8x8_t a8 = veor_u8(vld1_u8(a + 8 * i), flip);
      const int8x16_t a16 = vreinterpretq_s8_u8(vcombine_u8(a8, a8));
      acc[i][0] = vdotq_s32(acc[i][0], vqtbl1q_s8(a16, i0), v0);
      acc[i][1] = vdotq_s32(acc[i][1], vqtbl1q_s8(a16, i1), v1);
    }
    a += MR * 8;
    w += 40;
  }
  // The sums the loop took from the weights, or the driver's.
  int32x4_t cs[2] = {own_cs[0], own_cs[1]};
  if constexpr (!kOwnColSums) neon::load_s32<2>(p.col_sums, cs, 8);
  for (int i = 0; i < MR; ++i) {
    // Wrapping int32 arithmetic throughout (vmlaq wraps).
    const int32_t factor = kOwnColSums ? 128 : 128 - p.a_zero_point[i];
    int32_t out[8];
    vst1q_s32(out, vmlaq_n_s32(acc[i][0], cs[0], factor));
    vst1q_s32(out + 4, vmlaq_n_s32(acc[i][1], cs[1], factor));
    int32_t* c = p.c + i * p.ldc;
    for (int j = 0; j < p.nr; ++j) c[j] = out[j];
  }
}

}  // namespace

void spgemm_u8s8s32_ukernel_4x8c8__neondot(const SpgemmUkernelParams& p) noexcept {
  if (p.col_sums != nullptr) {
    dispatch_rows<4>(p.mr, [&](auto rows) { ukernel<rows, false>(p); });
  } else {
    dispatch_rows<4>(p.mr, [&](auto rows) { ukernel<rows, true>(p); });
  }
}

}  // namespace sparq::detail
