// Portable FP32 microkernel: the fallback for CPUs without SIMD kernels and
// the plainest statement of the contract in sgemm_kernels.hpp. One std::fma
// per term in increasing k, like the SIMD kernels' vfmadd231ps.
#include <algorithm>
#include <cmath>

#include "kernels/sgemm_kernels.hpp"

namespace sparq::detail {

void sgemm_f32_ukernel_4x8__scalar(const SgemmUkernelParams& p) noexcept {
  constexpr int kMR = 4;
  constexpr int kNR = 8;
  float acc[kMR][kNR];
  for (int i = 0; i < kMR; ++i) {
    for (int j = 0; j < kNR; ++j) {
      if (i >= p.mr || j >= p.nr) {
        acc[i][j] = 0.0f;
      } else if (p.first) {
        acc[i][j] = p.bias != nullptr ? p.bias[j] : 0.0f;
      } else {
        acc[i][j] = p.c[i * p.ldc + j];
      }
    }
  }
  const float* a = p.a;
  const float* w = p.w;
  for (int64_t k = 0; k < p.kc; ++k) {
    for (int i = 0; i < kMR; ++i) {
      for (int j = 0; j < kNR; ++j) acc[i][j] = std::fma(a[i], w[j], acc[i][j]);
    }
    a += kMR;
    w += kNR;
  }
  for (int i = 0; i < p.mr; ++i) {
    for (int j = 0; j < p.nr; ++j) {
      p.c[i * p.ldc + j] = p.relu ? std::max(acc[i][j], 0.0f) : acc[i][j];
    }
  }
}

}  // namespace sparq::detail
