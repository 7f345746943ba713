// AVX-512 dequantizing output stage: y = fma(float(acc), rs * cs, bias),
// optional ReLU, exactly as the scalar stage.
#include <immintrin.h>

#include "kernels/gemm_kernels.hpp"

namespace sparq::detail {

void gemm_dequantize__avx512vnni(const GemmDequantizeParams& p) noexcept {
  const __m512 zero = _mm512_setzero_ps();
  for (int j = 0; j < p.cols; j += 16) {
    const int left = p.cols - j;
    const __mmask16 mask = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
    const __m512 cs = _mm512_maskz_loadu_ps(mask, p.col_scale + j);
    const __m512 b = p.bias != nullptr ? _mm512_maskz_loadu_ps(mask, p.bias + j) : zero;
    for (int i = 0; i < p.rows; ++i) {
      const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(p.row_scale[i]), cs);
      const __m512 x = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(mask, p.acc + i * p.ld_acc + j));
      __m512 y = _mm512_fmadd_ps(x, scale, b);
      if (p.relu) y = _mm512_max_ps(y, zero);
      _mm512_mask_storeu_ps(p.out + i * p.ld_out + j, mask, y);
    }
  }
}

}  // namespace sparq::detail
