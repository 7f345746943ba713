// Baseline ARMv8 NEON microkernel: up to 4 rows x 4 columns, k in groups of 8.
//
// ARMv8.0 has no 8-bit dot product, and its 8-bit multiplies (SMULL/UMULL)
// need both operands of the same signedness. u8 activations times s8
// weights are therefore widened to int16 first (UXTL / SXTL: 0..255 and
// -128..127 both fit) and multiplied with SMLAL/SMLAL2 (int16 x int16 ->
// int32, 4 multiply-accumulates per instruction). Every product is exact and
// the int32 accumulation wraps mod 2^32 as the contract asks; nothing
// saturates at int16 (the AVX2 vpmaddubsw pitfall of docs/design.md rule 5 cannot occur).
//
// Register tile: 16 int32x4 accumulators acc[i][j], each holding 4 partial
// sums over k of one (row, column) pair; per k-group of 8 the kernel widens
// 4 rows of A (4 registers) and, one at a time, 4 columns of W (8 bytes each,
// [kp/8][4][8] panel layout) and issues 4 x 4 x 2 = 32 SMLAL(2). After the
// loop, two pairwise-add rounds (ADDP) turn the 16 registers into the 4 x 4
// result. Loads + widening cost 8 non-MAC vector instructions per 32 MACs.
#include <arm_neon.h>

#include "kernels/dispatch_rows.hpp"
#include "kernels/gemm_kernels.hpp"
#include "kernels/neon/gemm_neon_common.hpp"

namespace sparq::detail {
namespace {

constexpr int kNr = 4;
constexpr int kKr = 8;

template <int MR>
void ukernel(const GemmUkernelParams& p) noexcept {
  int32x4_t acc[MR][kNr];
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < kNr; ++j) acc[i][j] = vdupq_n_s32(0);
  }
  const uint8_t* a = p.a;
  const int8_t* w = p.w;
  for (int64_t g = p.kp / kKr; g > 0; --g) {
    __builtin_prefetch(w + 1024);
    int16x8_t ai[MR];
    for (int i = 0; i < MR; ++i) ai[i] = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(a + kKr * i)));
    for (int j = 0; j < kNr; ++j) {
      const int16x8_t wj = vmovl_s8(vld1_s8(w + kKr * j));
      for (int i = 0; i < MR; ++i) {
        acc[i][j] = vmlal_s16(acc[i][j], vget_low_s16(ai[i]), vget_low_s16(wj));
        acc[i][j] = vmlal_high_s16(acc[i][j], ai[i], wj);
      }
    }
    a += MR * kKr;
    w += kNr * kKr;
  }
  int32x4_t cs = vdupq_n_s32(0);
  if (p.col_sums != nullptr) cs = vld1q_s32(p.col_sums);
  for (int i = 0; i < MR; ++i) {
    int32x4_t row = vpaddq_s32(vpaddq_s32(acc[i][0], acc[i][1]), vpaddq_s32(acc[i][2], acc[i][3]));
    if (p.col_sums != nullptr) row = vmlsq_s32(row, cs, vdupq_n_s32(p.a_zero_point[i]));
    neon::store_s32<1>(p.c + i * p.ldc, &row, p.nr);
  }
}

}  // namespace

void gemm_u8s8s32_ukernel_4x4c8__neon(const GemmUkernelParams& p) noexcept {
  dispatch_rows<4>(p.mr, [&](auto rows) { ukernel<rows>(p); });
}

}  // namespace sparq::detail
