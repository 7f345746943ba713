// ARMv8.2 dot-product microkernel: up to 8 rows x 8 columns, k in groups of 4.
//
// SDOT multiplies signed by signed bytes and UDOT unsigned by unsigned; the
// mixed u8 x s8 form (USDOT/SUDOT) needs i8mm. The packed activations are u8
// (the x86 convention the driver uses: u8 data as is, s8 data + 128), so the
// kernel flips their top bit while loading: a ^ 0x80, read as int8, is
// exactly a - 128. Then
//     sum_k a * w = sum_k (a - 128) * w + 128 * sum_k w
// and the second term is the packed weights' column sum, which the contract
// already subtracts zero_point times: the kernel adds (128 - zero_point[i])
// * col_sums[j] once per output instead of zero_point * col_sums. When the
// driver passes no column sums (its K-chunked path for K > kMaxKChunk), the
// kernel computes them itself with one SDOT per weight register against a
// vector of ones. Every step wraps mod 2^32, so the result is exact whenever
// the true value fits int32.
//
// Register tile: 16 int32x4 accumulators acc[i][q] (row i, columns 4q..4q+3),
// 2 weight registers per k-group (the [kp/4][8][4] panel: 4 columns x 4 k
// each) and 2 activation registers (4 rows x 4 k each). The lane-indexed
// SDOT acc[i][q] += w[q] . a[i / 4].4b[i % 4] does 16 multiply-accumulates;
// per k-group: 4 loads, 2 EOR, 16 SDOT = 256 MACs.
#include <arm_neon.h>

#include <utility>

#include "kernels/dispatch_rows.hpp"
#include "kernels/gemm_kernels.hpp"
#include "kernels/neon/gemm_neon_common.hpp"

namespace sparq::detail {
namespace {

constexpr int kNr = 8;
constexpr int kKr = 4;

template <int MR, bool kOwnColSums>
void ukernel(const GemmUkernelParams& p) noexcept {
  constexpr int kAVecs = (MR + 3) / 4;
  int32x4_t acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = vdupq_n_s32(0);
  int32x4_t own_cs[2] = {vdupq_n_s32(0), vdupq_n_s32(0)};
  const uint8x16_t flip = vdupq_n_u8(0x80);
  const int8x16_t ones = vdupq_n_s8(1);
  const uint8_t* a = p.a;
  const int8_t* w = p.w;
  for (int64_t g = p.kp / kKr; g > 0; --g) {
    __builtin_prefetch(w + 1024);
    const int8x16_t w0 = vld1q_s8(w);
    const int8x16_t w1 = vld1q_s8(w + 16);
    if constexpr (kOwnColSums) {
      own_cs[0] = vdotq_s32(own_cs[0], w0, ones);
      own_cs[1] = vdotq_s32(own_cs[1], w1, ones);
    }
    int8x16_t av[kAVecs];
    av[0] = vreinterpretq_s8_u8(veorq_u8(neon::load_u8x16<4 * (MR < 4 ? MR : 4)>(a), flip));
    if constexpr (MR > 4) {
      av[kAVecs - 1] = vreinterpretq_s8_u8(veorq_u8(neon::load_u8x16<4 * (MR - 4)>(a + 16), flip));
    }
    // The lane of SDOT (by element) must be a compile-time constant.
    [&]<int... I>(std::integer_sequence<int, I...>) {
      ((acc[I][0] = vdotq_laneq_s32(acc[I][0], w0, av[I / 4], I % 4),
        acc[I][1] = vdotq_laneq_s32(acc[I][1], w1, av[I / 4], I % 4)),
       ...);
    }
    (std::make_integer_sequence<int, MR>{});
    a += MR * kKr;
    w += kNr * kKr;
  }
  // The sums the loop took from the weights, or the driver's.
  int32x4_t cs[2] = {own_cs[0], own_cs[1]};
  if constexpr (!kOwnColSums) neon::load_s32<2>(p.col_sums, cs, kNr);
  for (int i = 0; i < MR; ++i) {
    const int32_t zp = kOwnColSums ? 0 : p.a_zero_point[i];
    // 128 - zp in wrapping arithmetic, as every other step.
    const int32x4_t k = vdupq_n_s32(static_cast<int32_t>(128u - static_cast<uint32_t>(zp)));
    int32x4_t row[2] = {vmlaq_s32(acc[i][0], cs[0], k), vmlaq_s32(acc[i][1], cs[1], k)};
    neon::store_s32<2>(p.c + i * p.ldc, row, p.nr);
  }
}

template <int MR>
void dispatch_col_sums(const GemmUkernelParams& p) noexcept {
  if (p.col_sums != nullptr) return ukernel<MR, false>(p);
  ukernel<MR, true>(p);
}

}  // namespace

void gemm_u8s8s32_ukernel_8x8c4__neondot(const GemmUkernelParams& p) noexcept {
  dispatch_rows<8>(p.mr, [&](auto rows) { dispatch_col_sums<rows>(p); });
}

}  // namespace sparq::detail
