// The definition of the depthwise row kernel (src/kernels/depthwise_kernels.hpp):
// the plain sum, pixel by pixel and channel by channel.
#include "kernels/depthwise_kernels.hpp"

namespace sparq::detail {

void depthwise_row_u8s16__scalar(const DepthwiseRowArgs& a) noexcept {
  for (int64_t q = 0; q < a.pixels; ++q) {
    const int64_t offset = q * a.x_step;
    for (int64_t c = 0; c < a.ch; ++c) {
      int32_t sum = -a.zp_w[c];
      for (int64_t p = 0; p < a.pairs; ++p) {
        const int16_t* w = a.w + (p * a.ch + c) * 2;
        sum += int32_t{a.x[2 * p][offset + c]} * w[0] + int32_t{a.x[2 * p + 1][offset + c]} * w[1];
      }
      a.acc[q * a.ch + c] = sum;
    }
  }
}

}  // namespace sparq::detail
