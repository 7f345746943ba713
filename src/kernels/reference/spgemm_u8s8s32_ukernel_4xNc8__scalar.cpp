// Scalar direct sparse microkernel: up to 4 rows x any panel width, one
// step (8 inputs, 4 kept values per channel) at a time. The reference every
// SIMD sparse kernel is tested against, and the kernel of ISAs without one.
#include "kernels/sparse_gemm_kernels.hpp"

namespace sparq::detail {

void spgemm_u8s8s32_ukernel_4xNc8__scalar(const SpgemmUkernelParams& p) noexcept {
  const int pnr = p.panel_nr;
  for (int i = 0; i < p.mr; ++i) {
    for (int j = 0; j < p.nr; ++j) {
      // uint32: wrapping arithmetic, as the contract says (exact when the
      // true value fits in int32).
      uint32_t acc = 0;
      const int8_t* w = p.w;
      const uint8_t* a = p.a + i * 8;
      for (int64_t s = 0; s < p.steps; ++s) {
        const int8_t* v = w + j * 4;
        const unsigned m = static_cast<uint8_t>(w[pnr * 4 + j]);
        acc += static_cast<uint32_t>(a[m & 3u] * v[0]);
        acc += static_cast<uint32_t>(a[(m >> 2) & 3u] * v[1]);
        acc += static_cast<uint32_t>(a[4 + ((m >> 4) & 3u)] * v[2]);
        acc += static_cast<uint32_t>(a[4 + (m >> 6)] * v[3]);
        w += pnr * 5;
        a += p.mr * 8;
      }
      if (p.col_sums != nullptr) {
        acc -= static_cast<uint32_t>(p.a_zero_point[i]) * static_cast<uint32_t>(p.col_sums[j]);
      }
      p.c[i * p.ldc + j] = static_cast<int32_t>(acc);
    }
  }
}

}  // namespace sparq::detail
