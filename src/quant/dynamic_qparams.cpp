#include "quant/dynamic_qparams.hpp"

#include <limits>

#include "kernels/observe_kernels.hpp"
#include "sparq/error.hpp"
#include "sparq/isa.hpp"

namespace sparq::detail {

QParams dynamic_u8_qparams(const float* x, int64_t rows, int64_t cols, int64_t ld,
                           const char* who) {
  const ObserveKernels& kern = observe_kernels(active_isa());
  MinMaxAccum acc{std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                  0, 0};
  for (int64_t i = 0; i < rows; ++i) {
    kern.minmax(x + i * ld, static_cast<std::size_t>(cols), &acc);
    if (acc.nan_count != 0 || acc.inf_count != 0) {
      fail("{}: input row {} holds NaN or infinity; expected finite values", who, i);
    }
  }
  QuantSpec spec;
  spec.dtype = DType::u8;
  spec.scheme = Scheme::asymmetric;
  // No values (rows or cols 0) leave the accumulator empty: the range is
  // then [0, 0], as PyTorch's observers give for an empty tensor.
  if (acc.min > acc.max) acc.min = acc.max = 0.0f;
  return compute_qparams(acc.min, acc.max, spec);
}

}  // namespace sparq::detail
