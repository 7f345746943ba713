// FP32 microkernel, AArch64 NEON: an 8 x 8 tile in 16 q accumulators. Per k
// it loads two q of the weight panel and two q holding the 8 activations,
// and issues 16 fmla by lane (vfmaq_laneq_f32): 20 of the 32 vector
// registers, no broadcast instructions. Partial tiles go through a stack
// tile (rows and columns), which keeps the k loop branch-free.
#include <arm_neon.h>

#include "kernels/sgemm_kernels.hpp"

namespace sparq::detail {

void sgemm_f32_ukernel_8x8__neon(const SgemmUkernelParams& p) noexcept {
  constexpr int kMR = 8;
  constexpr int kNR = 8;
  const bool full = p.mr == kMR && p.nr == kNR;
  float tmp[kMR * kNR];
  // Where the tile is read from and written to: C itself, or tmp for edges.
  float* c = full ? p.c : tmp;
  const int64_t ldc = full ? p.ldc : kNR;
  if (!full) {
    for (int i = 0; i < kMR; ++i) {
      for (int j = 0; j < kNR; ++j) {
        tmp[i * kNR + j] = (!p.first && i < p.mr && j < p.nr) ? p.c[i * p.ldc + j] : 0.0f;
      }
    }
  }
  float32x4_t acc[kMR][2];
  for (int i = 0; i < kMR; ++i) {
    if (p.first) {
      if (p.bias != nullptr && full) {
        acc[i][0] = vld1q_f32(p.bias);
        acc[i][1] = vld1q_f32(p.bias + 4);
      } else if (p.bias != nullptr) {
        float b[kNR] = {};
        for (int j = 0; j < p.nr; ++j) b[j] = p.bias[j];
        acc[i][0] = vld1q_f32(b);
        acc[i][1] = vld1q_f32(b + 4);
      } else {
        acc[i][0] = vdupq_n_f32(0.0f);
        acc[i][1] = vdupq_n_f32(0.0f);
      }
    } else {
      acc[i][0] = vld1q_f32(c + i * ldc);
      acc[i][1] = vld1q_f32(c + i * ldc + 4);
    }
  }
  const float* a = p.a;
  const float* w = p.w;
  for (int64_t k = 0; k < p.kc; ++k) {
    const float32x4_t w0 = vld1q_f32(w);
    const float32x4_t w1 = vld1q_f32(w + 4);
    const float32x4_t a0 = vld1q_f32(a);
    const float32x4_t a1 = vld1q_f32(a + 4);
#define SPARQ_ROW(i, av, lane)                          \
  acc[i][0] = vfmaq_laneq_f32(acc[i][0], w0, av, lane); \
  acc[i][1] = vfmaq_laneq_f32(acc[i][1], w1, av, lane);
    SPARQ_ROW(0, a0, 0)
    SPARQ_ROW(1, a0, 1)
    SPARQ_ROW(2, a0, 2)
    SPARQ_ROW(3, a0, 3)
    SPARQ_ROW(4, a1, 0)
    SPARQ_ROW(5, a1, 1)
    SPARQ_ROW(6, a1, 2)
    SPARQ_ROW(7, a1, 3)
#undef SPARQ_ROW
    a += kMR;
    w += kNR;
  }
  const float32x4_t zero = vdupq_n_f32(0.0f);
  for (int i = 0; i < kMR; ++i) {
    if (p.relu) {
      acc[i][0] = vmaxq_f32(acc[i][0], zero);
      acc[i][1] = vmaxq_f32(acc[i][1], zero);
    }
    vst1q_f32(c + i * ldc, acc[i][0]);
    vst1q_f32(c + i * ldc + 4, acc[i][1]);
  }
  if (!full) {
    for (int i = 0; i < p.mr; ++i) {
      for (int j = 0; j < p.nr; ++j) p.c[i * p.ldc + j] = tmp[i * kNR + j];
    }
  }
}

}  // namespace sparq::detail
