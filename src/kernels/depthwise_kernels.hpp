// Kernels of the INT8 depthwise convolution with one output per channel
// (MobileNet's kind; src/nn/interpreter.cpp depthwise_one_per_channel runs
// them): the int32 sums of a run of output pixels, every channel at once.
//
// Layout, shared by every ISA so the weights are prepared once per call:
//   * x[t], t < 2 * pairs: the input pixel under tap t of the run's first
//     output pixel, `ch` u8 values, or, for a tap in the zero padding, a
//     run of zero points; output pixel q reads x[t] + q * x_step (the
//     caller keeps every tap of every pixel of a run inside the image or
//     inside its zero-point run);
//   * w: [pairs][ch][2] int16, (w[2p][c], w[2p + 1][c]), taps in pairs so
//     that one multiply-add (vpmaddwd) sums two taps of 8 or 16 channels;
//     an odd tap count is padded with a tap of weight 0 (any x pointer);
//   * zp_w[c] = zero_point * sum over taps of w[t][c].
// Then acc[c] = sum_t x[t][c] * w[t][c] - zp_w[c] = sum over real taps of
// (x - zero_point) * w: padding taps add zp * w and zp_w takes it back, so
// no tap is skipped and no subtraction runs per tap. Every product is at
// most 255 * 128 and a pair sum at most 2 * 255 * 128, exact in int32; the
// caller bounds the tap count so that the whole sum is too (taps <= 65793,
// as the GEMM's K chunks), so every ISA gives the same bits as the scalar
// reference (tests/kernels/depthwise_kernels_test.cpp).
//
// Kernels are noexcept, validate nothing, need no alignment.
#pragma once

#include <cstdint>

#include "sparq/isa.hpp"

namespace sparq::detail {

struct DepthwiseRowArgs {
  const uint8_t* const* x;  // [2 * pairs] pointers to ch u8 values (the first pixel's)
  int64_t x_step;           // bytes from one output pixel's taps to the next's
  int64_t pixels;
  const int16_t* w;     // [pairs][ch][2]
  const int32_t* zp_w;  // [ch]
  int64_t pairs;
  int64_t ch;
  int32_t* acc;  // [pixels][ch] out
};
using DepthwiseRow = void(const DepthwiseRowArgs& args) noexcept;
using DepthwiseRowFn = DepthwiseRow*;

struct DepthwiseKernels {
  const char* name;  // e.g. "avx2", for diagnostics and tests
  DepthwiseRowFn row_u8s16;
};

/// The kernels for `isa` (the next lower table for ISAs without their own).
const DepthwiseKernels& depthwise_kernels(Isa isa) noexcept;

// Naming: <op>__<isa> (docs/design.md rule 4).
DepthwiseRow depthwise_row_u8s16__scalar;
DepthwiseRow depthwise_row_u8s16__avx2;

}  // namespace sparq::detail
