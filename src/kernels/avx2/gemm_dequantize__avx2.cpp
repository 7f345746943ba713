// AVX2 dequantizing output stage: y = fma(float(acc), rs * cs, bias), ReLU.
#include <immintrin.h>

#include <cstring>

#include "kernels/gemm_kernels.hpp"

namespace sparq::detail {

void gemm_dequantize__avx2(const GemmDequantizeParams& p) noexcept {
  const __m256 zero = _mm256_setzero_ps();
  for (int j = 0; j < p.cols; j += 8) {
    const int n = p.cols - j < 8 ? p.cols - j : 8;
    alignas(32) float cs_buf[8] = {};
    alignas(32) float b_buf[8] = {};
    std::memcpy(cs_buf, p.col_scale + j, sizeof(float) * n);
    if (p.bias != nullptr) std::memcpy(b_buf, p.bias + j, sizeof(float) * n);
    const __m256 cs = _mm256_load_ps(cs_buf);
    const __m256 b = _mm256_load_ps(b_buf);
    for (int i = 0; i < p.rows; ++i) {
      const __m256 scale = _mm256_mul_ps(_mm256_set1_ps(p.row_scale[i]), cs);
      __m256i acc;
      if (n == 8) {  // full lanes load directly; the tail through a padded buffer
        acc = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.acc + i * p.ld_acc + j));
      } else {
        alignas(32) int32_t in[8] = {};
        std::memcpy(in, p.acc + i * p.ld_acc + j, sizeof(int32_t) * n);
        acc = _mm256_load_si256(reinterpret_cast<const __m256i*>(in));
      }
      const __m256 x = _mm256_cvtepi32_ps(acc);
      __m256 y = _mm256_fmadd_ps(x, scale, b);
      if (p.relu) y = _mm256_max_ps(y, zero);
      if (n == 8) {
        _mm256_storeu_ps(p.out + i * p.ld_out + j, y);
      } else {
        alignas(32) float res[8];
        _mm256_store_ps(res, y);
        std::memcpy(p.out + i * p.ld_out + j, res, sizeof(float) * n);
      }
    }
  }
}

}  // namespace sparq::detail
