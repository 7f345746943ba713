// Scalar reference microkernel: MR = 4 rows, NR = 8 columns, KR = 4.
// Wrapping uint32 arithmetic reproduces the SIMD kernels' mod-2^32 sums.
#include "kernels/gemm_kernels.hpp"

namespace sparq::detail {

void gemm_u8s8s32_ukernel_4x8c4__scalar(const GemmUkernelParams& p) noexcept {
  constexpr int kNr = 8;
  constexpr int kKr = 4;
  uint32_t acc[4][kNr] = {};
  const int mr = p.mr;
  const int64_t groups = p.kp / kKr;
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* a = p.a + g * mr * kKr;
    const int8_t* w = p.w + g * kNr * kKr;
    for (int i = 0; i < mr; ++i) {
      for (int j = 0; j < kNr; ++j) {
        int32_t dot = 0;  // at most 4 * 255 * 128: exact
        for (int r = 0; r < kKr; ++r) dot += int32_t{a[i * kKr + r]} * int32_t{w[j * kKr + r]};
        acc[i][j] += static_cast<uint32_t>(dot);
      }
    }
  }
  for (int i = 0; i < mr; ++i) {
    for (int j = 0; j < p.nr; ++j) {
      uint32_t v = acc[i][j];
      if (p.col_sums != nullptr) {
        v -= static_cast<uint32_t>(p.a_zero_point[i]) * static_cast<uint32_t>(p.col_sums[j]);
      }
      p.c[i * p.ldc + j] = static_cast<int32_t>(v);
    }
  }
}

}  // namespace sparq::detail
