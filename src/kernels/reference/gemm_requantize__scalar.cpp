// Scalar requantizing output stage: the definition every SIMD stage matches.
#include <limits>

#include "kernels/gemm_kernels.hpp"
#include "sparq/quant/requantize.hpp"

namespace sparq::detail {
namespace {

template <class T>
void requantize_tile(const GemmRequantizeParams& p) {
  T* out = static_cast<T*>(p.out);
  for (int i = 0; i < p.rows; ++i) {
    const int32_t* acc = p.acc + i * p.ld_acc;
    for (int j = 0; j < p.cols; ++j) {
      int64_t v = acc[j];
      if (p.bias != nullptr) v += p.bias[j];
      if (p.residual != nullptr) {
        const uint8_t byte = p.residual[i * p.residual_ld + j];
        const int32_t r = p.residual_signed ? int32_t{static_cast<int8_t>(byte)} : int32_t{byte};
        v += multiply_by_quantized_multiplier(
            r - p.residual_zero_point,
            QuantizedMultiplier{p.residual_multiplier[j], p.residual_shift[j]});
      }
      if (v > std::numeric_limits<int32_t>::max()) v = std::numeric_limits<int32_t>::max();
      if (v < std::numeric_limits<int32_t>::min()) v = std::numeric_limits<int32_t>::min();
      const QuantizedMultiplier m{p.multiplier[j], p.shift[j]};
      out[i * p.ld_out + j] =
          static_cast<T>(requantize(static_cast<int32_t>(v), m, p.zero_point, p.qmin, p.qmax));
    }
  }
}

}  // namespace

SPARQ_DEFINE_GEMM_REQUANTIZE(scalar)

}  // namespace sparq::detail
