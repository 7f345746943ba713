// Requantization: turning int32 GEMM accumulators back into 8-bit values.
//
// An output of a quantized layer is
//     y_q = zp_y + (s_a * s_w / s_y) * acc         (acc = sum (a - zp_a) * w)
// The real multiplier M = s_a * s_w / s_y is represented, as in the TFLite
// quantization spec and gemmlowp, by a Q31 fixed-point multiplier m0 in
// [2^30, 2^31) and a power-of-two exponent `shift`, M ~ m0 * 2^(shift - 31).
// Applying it is two integer roundings, reproduced here bit for bit from the
// reference implementations:
//   1. saturating_rounding_doubling_high_mul(x << max(shift,0), m0):
//      floor((x * m0 + 2^30) / 2^31) on the exact 64-bit product, i.e. round
//      to nearest with ties towards +infinity (gemmlowp's nudge of
//      1 - 2^30 for negative products followed by a truncating division
//      gives exactly that, like ARM's SQRDMULH), saturating the one
//      overflow case INT32_MIN * INT32_MIN;
//   2. rounding_divide_by_pot(., max(-shift, 0)): arithmetic shift right,
//      rounding half away from zero.
// Every SIMD output stage in sparq must match these scalar functions exactly.
//
// The float path (requantize_float) computes round_half_even(acc * M) in
// float32, as PyTorch's fbgemm backend does; it is offered for users who
// want that behaviour, and is not bit-compatible with the fixed-point path.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "sparq/error.hpp"

namespace sparq {

/// A real multiplier in fixed-point form: value ~ multiplier * 2^(shift - 31).
struct QuantizedMultiplier {
  int32_t multiplier = 0;  ///< in [2^30, 2^31) for a positive input, 0 for 0
  int shift = 0;           ///< left shift if > 0, right shift if < 0; in [-31, 30]
  friend bool operator==(const QuantizedMultiplier&, const QuantizedMultiplier&) = default;
};

/// TFLite's QuantizeMultiplier: the Q31 form of `real_multiplier`.
/// Multipliers below 2^-32 flush to zero (as in TFLite). Throws sparq::Error
/// for a negative, non-finite or too large (>= 2^30) multiplier.
inline QuantizedMultiplier quantize_multiplier(double real_multiplier) {
  if (!std::isfinite(real_multiplier) || real_multiplier < 0.0) {
    detail::fail("quantize_multiplier: real_multiplier ({}) must be finite and >= 0",
                 real_multiplier);
  }
  if (real_multiplier >= 1073741824.0) {
    detail::fail("quantize_multiplier: real_multiplier ({}) must be < 2^30", real_multiplier);
  }
  QuantizedMultiplier out;
  if (real_multiplier == 0.0) return out;
  int shift = 0;
  const double q = std::frexp(real_multiplier, &shift);  // q in [0.5, 1)
  auto q_fixed = static_cast<int64_t>(std::round(q * static_cast<double>(1LL << 31)));
  if (q_fixed == (1LL << 31)) {  // q rounded up to 1.0
    q_fixed /= 2;
    ++shift;
  }
  if (shift > 30) {
    // Reals in [2^30 - 2^-2, 2^30) round up to exactly 2^30, whose shift
    // (31) the fixed-point path cannot apply (documented range: [-31, 30]).
    detail::fail("quantize_multiplier: real_multiplier ({}) rounds to 2^30; expected < 2^30 - 2^-2",
                 real_multiplier);
  }
  if (shift < -31) {  // below what a 32-bit right shift can express
    shift = 0;
    q_fixed = 0;
  }
  out.multiplier = static_cast<int32_t>(q_fixed);
  out.shift = shift;
  return out;
}

/// gemmlowp's SaturatingRoundingDoublingHighMul: floor((a * b + 2^30) / 2^31)
/// (round to nearest, ties towards +infinity), saturating
/// INT32_MIN * INT32_MIN to INT32_MAX.
inline int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b) noexcept {
  if (a == b && a == std::numeric_limits<int32_t>::min()) {
    return std::numeric_limits<int32_t>::max();
  }
  const int64_t ab = static_cast<int64_t>(a) * static_cast<int64_t>(b);
  const int64_t nudge = ab >= 0 ? (1LL << 30) : (1 - (1LL << 30));
  return static_cast<int32_t>((ab + nudge) / (1LL << 31));
}

/// gemmlowp's RoundingDivideByPOT: x / 2^exponent, ties away from zero.
/// `exponent` in [0, 31].
inline int32_t rounding_divide_by_pot(int32_t x, int exponent) noexcept {
  const int32_t mask = static_cast<int32_t>((1LL << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/// TFLite's MultiplyByQuantizedMultiplier. A left shift that would overflow
/// int32 saturates (TFLite leaves that case undefined; sparq defines it).
inline int32_t multiply_by_quantized_multiplier(int32_t x, QuantizedMultiplier m) noexcept {
  const int left = m.shift > 0 ? m.shift : 0;
  const int right = m.shift > 0 ? 0 : -m.shift;
  int64_t shifted = static_cast<int64_t>(x) * (int64_t{1} << left);
  if (shifted > std::numeric_limits<int32_t>::max()) shifted = std::numeric_limits<int32_t>::max();
  if (shifted < std::numeric_limits<int32_t>::min()) shifted = std::numeric_limits<int32_t>::min();
  return rounding_divide_by_pot(
      saturating_rounding_doubling_high_mul(static_cast<int32_t>(shifted), m.multiplier), right);
}

/// Fixed-point requantization of one accumulator to [qmin, qmax].
inline int32_t requantize(int32_t acc, QuantizedMultiplier m, int32_t zero_point, int32_t qmin,
                          int32_t qmax) noexcept {
  int64_t v = static_cast<int64_t>(multiply_by_quantized_multiplier(acc, m)) + zero_point;
  if (v < qmin) v = qmin;
  if (v > qmax) v = qmax;
  return static_cast<int32_t>(v);
}

/// Float requantization of one accumulator: round_half_even(acc * multiplier)
/// + zero_point, clamped to [qmin, qmax] (NaN cannot arise from finite inputs).
inline int32_t requantize_float(int32_t acc, float multiplier, int32_t zero_point, int32_t qmin,
                                int32_t qmax) noexcept {
  float v = std::nearbyint(static_cast<float>(acc) * multiplier) + static_cast<float>(zero_point);
  v = std::fmin(std::fmax(v, static_cast<float>(qmin)), static_cast<float>(qmax));
  return static_cast<int32_t>(v);
}

}  // namespace sparq
