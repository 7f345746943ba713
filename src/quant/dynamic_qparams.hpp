// The qparams of dynamic quantization (PyTorch's quantize_dynamic): u8,
// asymmetric, from the observed range of the activations at run time.
// One definition for every dynamic path (sparq::linear_dynamic, the dynamic
// QLinear / QConv2d of sparq::nn), so the same tensor gets the same qparams,
// and therefore (through detail::quantize_tensor) the same u8 values, ties
// included, whichever path quantizes it. Internal to src/.
#pragma once

#include <cstdint>

#include "sparq/quant/qparams.hpp"

namespace sparq::detail {

/// compute_qparams(min, max, u8 asymmetric) over rows [0, rows) of x (each
/// `cols` floats, row stride `ld`), with the dispatched observer min/max
/// kernel. Throws sparq::Error naming `who` and the first row that holds a
/// NaN or an infinity.
QParams dynamic_u8_qparams(const float* x, int64_t rows, int64_t cols, int64_t ld, const char* who);

}  // namespace sparq::detail
