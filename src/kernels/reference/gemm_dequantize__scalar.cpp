// Scalar dequantizing output stage: one float product and one fma per value,
// exactly what the SIMD stages compute (so every ISA gives the same floats).
#include <cmath>

#include "kernels/gemm_kernels.hpp"

namespace sparq::detail {

void gemm_dequantize__scalar(const GemmDequantizeParams& p) noexcept {
  for (int i = 0; i < p.rows; ++i) {
    const int32_t* acc = p.acc + i * p.ld_acc;
    float* out = p.out + i * p.ld_out;
    for (int j = 0; j < p.cols; ++j) {
      const float scale = p.row_scale[i] * p.col_scale[j];
      const float bias = p.bias != nullptr ? p.bias[j] : 0.0f;
      float y = std::fma(static_cast<float>(acc[j]), scale, bias);
      if (p.relu) y = y > 0.0f ? y : 0.0f;
      out[j] = y;
    }
  }
}

}  // namespace sparq::detail
