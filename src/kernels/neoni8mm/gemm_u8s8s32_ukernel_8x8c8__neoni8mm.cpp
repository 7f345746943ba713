// ARMv8.6 i8mm microkernel: up to 8 rows x 8 columns, k in groups of 8.
//
// USMMLA multiplies a 2 x 8 block of unsigned bytes by an 8 x 2 block of
// signed bytes into a 2 x 2 int32 block: 32 multiply-accumulates per
// instruction, and it takes the u8 activations and s8 weights exactly as the
// driver packs them (no bit flip, no compensation beyond the contract's
// zero_point * col_sums).
//
// Register tile: 4 x 4 = 16 int32x4 accumulators acc[r][q], each the 2 x 2
// block (rows 2r, 2r+1) x (columns 2q, 2q+1) stored as
// [r0.c0, r0.c1, r1.c0, r1.c1]. Per k-group of 8: 4 weight registers (the
// [kp/8][8][8] panel: two columns x 8 k each), 4 activation registers (the
// [kp/8][mr][8] tile: two rows x 8 k each), 16 USMMLA = 512 MACs for 8 loads.
// At the end ZIP1/ZIP2 on 64-bit lanes turn the 2 x 2 blocks into rows. An
// odd last row is loaded next to zeros (its partner row is never stored).
// All arithmetic wraps mod 2^32, as the contract asks.
#include <arm_neon.h>

#include "kernels/dispatch_rows.hpp"
#include "kernels/gemm_kernels.hpp"
#include "kernels/neon/gemm_neon_common.hpp"

namespace sparq::detail {
namespace {

constexpr int kNr = 8;
constexpr int kKr = 8;

template <int MR>
void ukernel(const GemmUkernelParams& p) noexcept {
  constexpr int kPairs = (MR + 1) / 2;
  int32x4_t acc[kPairs][4];
  for (int r = 0; r < kPairs; ++r) {
    for (int q = 0; q < 4; ++q) acc[r][q] = vdupq_n_s32(0);
  }
  const uint8_t* a = p.a;
  const int8_t* w = p.w;
  for (int64_t g = p.kp / kKr; g > 0; --g) {
    __builtin_prefetch(w + 1024);
    int8x16_t wv[4];
    for (int q = 0; q < 4; ++q) wv[q] = vld1q_s8(w + 16 * q);
    uint8x16_t av[kPairs];
    for (int r = 0; r < MR / 2; ++r) av[r] = vld1q_u8(a + 16 * r);
    if constexpr (MR % 2 != 0) av[kPairs - 1] = neon::load_u8x16<8>(a + 16 * (kPairs - 1));
    for (int r = 0; r < kPairs; ++r) {
      for (int q = 0; q < 4; ++q) acc[r][q] = vusmmlaq_s32(acc[r][q], av[r], wv[q]);
    }
    a += MR * kKr;
    w += kNr * kKr;
  }
  int32x4_t cs[2] = {vdupq_n_s32(0), vdupq_n_s32(0)};
  if (p.col_sums != nullptr) {
    cs[0] = vld1q_s32(p.col_sums);
    cs[1] = vld1q_s32(p.col_sums + 4);
  }
  auto s64 = [](int32x4_t v) { return vreinterpretq_s64_s32(v); };
  auto s32 = [](int64x2_t v) { return vreinterpretq_s32_s64(v); };
  for (int r = 0; r < kPairs; ++r) {
    int32x4_t rows[2][2] = {{s32(vzip1q_s64(s64(acc[r][0]), s64(acc[r][1]))),
                             s32(vzip1q_s64(s64(acc[r][2]), s64(acc[r][3])))},
                            {s32(vzip2q_s64(s64(acc[r][0]), s64(acc[r][1]))),
                             s32(vzip2q_s64(s64(acc[r][2]), s64(acc[r][3])))}};
    for (int h = 0; h < 2; ++h) {
      const int i = 2 * r + h;
      if (i >= MR) break;
      if (p.col_sums != nullptr) {
        const int32x4_t zp = vdupq_n_s32(p.a_zero_point[i]);
        rows[h][0] = vmlsq_s32(rows[h][0], cs[0], zp);
        rows[h][1] = vmlsq_s32(rows[h][1], cs[1], zp);
      }
      neon::store_s32<2>(p.c + i * p.ldc, rows[h], p.nr);
    }
  }
}

}  // namespace

void gemm_u8s8s32_ukernel_8x8c8__neoni8mm(const GemmUkernelParams& p) noexcept {
  dispatch_rows<8>(p.mr, [&](auto rows) { ukernel<rows>(p); });
}

}  // namespace sparq::detail
