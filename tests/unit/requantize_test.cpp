// Fixed-point requantization (quantize_multiplier + gemmlowp/TFLite integer
// rounding) against independent 128-bit reference math over the whole
// multiplier range, plus hand-computed cases from the TFLite/gemmlowp
// definitions.
#include "sparq/quant/requantize.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

namespace sparq {
namespace {

using i128 = __int128;
constexpr int32_t kMin = std::numeric_limits<int32_t>::min();
constexpr int32_t kMax = std::numeric_limits<int32_t>::max();

// floor(a / 2^k) for k >= 0 on 128-bit values (>> on signed __int128 is an
// arithmetic shift on GCC and Clang).
i128 floor_div_pow2(i128 a, int k) { return a >> k; }

// A real multiplier log-uniform over [2^-31, 2^30 - 0.25): the whole range
// quantize_multiplier accepts (from 2^30 - 0.25 up it rounds to 2^30).
double random_real_multiplier(std::mt19937_64& rng) {
  std::uniform_real_distribution<double> exponent(-31.0, 30.0);
  for (;;) {
    const double real = std::exp2(exponent(rng));
    if (real < std::ldexp(1.0, 30) - 0.25) return real;
  }
}

// Reference SRDHM: floor((a*b + 2^30) / 2^31) exactly, saturated to int32.
int32_t ref_srdhm(int32_t a, int32_t b) {
  const i128 v = floor_div_pow2(static_cast<i128>(a) * b + (i128{1} << 30), 31);
  return v > kMax ? kMax : static_cast<int32_t>(v);
}

// Reference rounding divide: x / 2^e rounded to nearest, ties away from zero.
int32_t ref_rdpot(int32_t x, int e) {
  if (e == 0) return x;
  const i128 ax = x < 0 ? -static_cast<i128>(x) : static_cast<i128>(x);
  const i128 r = (ax + (i128{1} << (e - 1))) >> e;
  return static_cast<int32_t>(x < 0 ? -r : r);
}

int32_t ref_multiply(int32_t x, QuantizedMultiplier m) {
  const int left = std::max(m.shift, 0), right = std::max(-m.shift, 0);
  i128 shifted = static_cast<i128>(x) << left;
  shifted = std::clamp<i128>(shifted, kMin, kMax);
  return ref_rdpot(ref_srdhm(static_cast<int32_t>(shifted), m.multiplier), right);
}

TEST(QuantizeMultiplier, HandComputed) {
  EXPECT_EQ(quantize_multiplier(0.0), (QuantizedMultiplier{0, 0}));
  EXPECT_EQ(quantize_multiplier(0.5), (QuantizedMultiplier{1 << 30, 0}));
  EXPECT_EQ(quantize_multiplier(1.0), (QuantizedMultiplier{1 << 30, 1}));
  EXPECT_EQ(quantize_multiplier(0.75), (QuantizedMultiplier{3 << 29, 0}));
  EXPECT_EQ(quantize_multiplier(3.0), (QuantizedMultiplier{3 << 29, 2}));
  EXPECT_EQ(quantize_multiplier(std::ldexp(1.0, -31)), (QuantizedMultiplier{1 << 30, -30}));
  EXPECT_EQ(quantize_multiplier(std::ldexp(1.0, -32)), (QuantizedMultiplier{1 << 30, -31}));
  // Below 2^-32: flushed to zero as TFLite does.
  EXPECT_EQ(quantize_multiplier(std::ldexp(1.0, -33)), (QuantizedMultiplier{0, 0}));
  // q = 1 - 2^-40 rounds up to 1.0: the multiplier renormalises to 2^30.
  EXPECT_EQ(quantize_multiplier(1.0 - std::ldexp(1.0, -40)), (QuantizedMultiplier{1 << 30, 1}));
  EXPECT_EQ(quantize_multiplier(std::ldexp(1.0, 29)), (QuantizedMultiplier{1 << 30, 30}));
}

TEST(QuantizeMultiplier, Errors) {
  EXPECT_THROW(quantize_multiplier(-0.5), Error);
  EXPECT_THROW(quantize_multiplier(std::nan("")), Error);
  EXPECT_THROW(quantize_multiplier(INFINITY), Error);
  EXPECT_THROW(quantize_multiplier(std::ldexp(1.0, 30)), Error);
  // Just below 2^30 but rounds to 2^30 (shift would be 31).
  EXPECT_THROW(quantize_multiplier(std::ldexp(1.0, 30) - 0.125), Error);
  EXPECT_NO_THROW(quantize_multiplier(std::ldexp(1.0, 30) - 1.0));
}

// Over [2^-31, 2^30), log-uniform: the Q31 form is normalised and within half
// a Q31 step of the real multiplier.
TEST(QuantizeMultiplier, WholeRangeAccuracy) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 200000; ++i) {
    const double real = random_real_multiplier(rng);
    const QuantizedMultiplier m = quantize_multiplier(real);
    ASSERT_GE(m.multiplier, 1 << 30) << real;
    ASSERT_GE(m.shift, -31);
    ASSERT_LE(m.shift, 30);
    const double value = std::ldexp(static_cast<double>(m.multiplier), m.shift - 31);
    ASSERT_LE(std::fabs(value - real), std::ldexp(0.5, m.shift - 31) * (1 + 1e-12)) << real;
  }
}

TEST(Srdhm, HandComputed) {
  // 0.5 of a unit ties towards +infinity, for either sign.
  EXPECT_EQ(saturating_rounding_doubling_high_mul(1 << 30, 1), 1);      // +0.5 -> 1
  EXPECT_EQ(saturating_rounding_doubling_high_mul(-(1 << 30), 1), 0);   // -0.5 -> 0
  EXPECT_EQ(saturating_rounding_doubling_high_mul(-(1 << 30), 3), -1);  // -1.5 -> -1
  EXPECT_EQ(saturating_rounding_doubling_high_mul(kMin, kMin), kMax);   // the one overflow
  EXPECT_EQ(saturating_rounding_doubling_high_mul(kMax, kMax), kMax - 1);
  EXPECT_EQ(saturating_rounding_doubling_high_mul(kMin, kMax), -kMax);
  EXPECT_EQ(saturating_rounding_doubling_high_mul(1000, 1 << 30), 500);
}

TEST(Srdhm, RandomAgainst128Bit) {
  std::mt19937 rng(2);
  for (int i = 0; i < 300000; ++i) {
    const auto a = static_cast<int32_t>(rng()), b = static_cast<int32_t>(rng());
    ASSERT_EQ(saturating_rounding_doubling_high_mul(a, b), ref_srdhm(a, b)) << a << " " << b;
  }
}

TEST(RoundingDivideByPot, HandComputed) {
  EXPECT_EQ(rounding_divide_by_pot(5, 1), 3);    // 2.5 -> 3
  EXPECT_EQ(rounding_divide_by_pot(-5, 1), -3);  // -2.5 -> -3 (away from zero)
  EXPECT_EQ(rounding_divide_by_pot(-6, 2), -2);  // -1.5 -> -2
  EXPECT_EQ(rounding_divide_by_pot(-5, 2), -1);  // -1.25 -> -1
  EXPECT_EQ(rounding_divide_by_pot(kMin, 31), -1);
  EXPECT_EQ(rounding_divide_by_pot(kMax, 31), 1);
  EXPECT_EQ(rounding_divide_by_pot(7, 0), 7);
}

TEST(RoundingDivideByPot, AllExponentsAgainstReference) {
  std::mt19937 rng(3);
  for (int e = 0; e <= 31; ++e) {
    for (int32_t x : {kMin, kMin + 1, -1, 0, 1, kMax, kMax - 1}) {
      ASSERT_EQ(rounding_divide_by_pot(x, e), ref_rdpot(x, e)) << x << " " << e;
    }
    for (int i = 0; i < 5000; ++i) {
      const auto x = static_cast<int32_t>(rng());
      ASSERT_EQ(rounding_divide_by_pot(x, e), ref_rdpot(x, e)) << x << " " << e;
    }
  }
}

// multiply_by_quantized_multiplier over random multipliers in [2^-31, 2^30)
// and random int32 inputs (full range and small accumulator-like values):
// bit-exact with the 128-bit two-step reference, and within 1 of the exact
// product x * M when nothing saturates (each of the two roundings loses at
// most half a unit of the final result, the first scaled down by 2^-right).
TEST(MultiplyByQuantizedMultiplier, WholeRangeAgainst128Bit) {
  std::mt19937_64 rng(4);
  for (int i = 0; i < 200000; ++i) {
    const double real = random_real_multiplier(rng);
    const QuantizedMultiplier m = quantize_multiplier(real);
    int32_t x = static_cast<int32_t>(rng());
    if (i % 2) x >>= (rng() % 31);  // small magnitudes too
    const int32_t got = multiply_by_quantized_multiplier(x, m);
    ASSERT_EQ(got, ref_multiply(x, m))
        << "x=" << x << " m=" << m.multiplier << " shift=" << m.shift;
    const long double exact =
        static_cast<long double>(x) * m.multiplier * std::ldexp(1.0L, m.shift - 31);
    if (std::fabs(exact) < 2.0e9L &&
        std::fabs(static_cast<long double>(x) * std::ldexp(1.0L, std::max(m.shift, 0))) < 2.0e9L) {
      ASSERT_LE(std::fabs(static_cast<long double>(got) - exact), 1.0L)
          << "x=" << x << " real=" << real;
    }
  }
}

TEST(MultiplyByQuantizedMultiplier, LeftShiftSaturates) {
  const QuantizedMultiplier m = quantize_multiplier(4.0);  // shift 3
  EXPECT_EQ(m.shift, 3);
  EXPECT_EQ(multiply_by_quantized_multiplier(kMax, m), ref_multiply(kMax, m));
  EXPECT_EQ(multiply_by_quantized_multiplier(kMin, m), ref_multiply(kMin, m));
  EXPECT_EQ(multiply_by_quantized_multiplier(1 << 28, m),
            kMax / 2 + 1);  // 2^31 * 0.5 saturated path
}

TEST(Requantize, ClampsAndAddsZeroPoint) {
  const QuantizedMultiplier m = quantize_multiplier(0.25);
  EXPECT_EQ(requantize(400, m, 10, -128, 127), 110);
  EXPECT_EQ(requantize(4000, m, 10, -128, 127), 127);
  EXPECT_EQ(requantize(-4000, m, 10, -128, 127), -128);
  EXPECT_EQ(requantize(kMax, quantize_multiplier(1.0), 127, -128, 127), 127);  // no int overflow
  EXPECT_EQ(requantize(6, m, 0, -128, 127), 2);    // 1.5 -> 2 (ties towards +inf, then exact)
  EXPECT_EQ(requantize(-6, m, 0, -128, 127), -2);  // -1.5: SRDHM exact, rounding divide away
}

TEST(RequantizeFloat, TiesToEvenAndClamps) {
  EXPECT_EQ(requantize_float(5, 0.5f, 0, -128, 127), 2);   // 2.5 -> 2
  EXPECT_EQ(requantize_float(7, 0.5f, 0, -128, 127), 4);   // 3.5 -> 4
  EXPECT_EQ(requantize_float(-5, 0.5f, 3, -128, 127), 1);  // -2.5 -> -2, +3
  EXPECT_EQ(requantize_float(1000, 1.0f, 0, 0, 255), 255);
  EXPECT_EQ(requantize_float(-1000, 1.0f, 0, 0, 255), 0);
}

}  // namespace
}  // namespace sparq
