// Output stages on every ISA: requantization bit-exact with the scalar
// sparq::requantize() (int64 reference sums, saturating bias add), the
// dequantizing stage identical across ISAs and close to FP64 math, and both
// stages on the K-split (int64) path.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/gemm_kernels.hpp"
#include "kernels/gemm_test_support.hpp"
#include "sparq/gemm/gemm.hpp"
#include "support/isa_param.hpp"

namespace sparq {
namespace {

using testing::random_bytes;
using testing::reference_gemm;

using testing::sat32;

// The requantize parameters both stage tests set: an accumulator tile, its
// per-column multipliers, shifts and bias, and the output's zero point and
// clamp range (the output pointer and a residual are set by each test).
detail::GemmRequantizeParams requantize_params(const std::vector<int32_t>& acc, int64_t ld_acc,
                                               int rows, int cols, const std::vector<int32_t>& mul,
                                               const std::vector<int32_t>& sh, const int32_t* bias,
                                               int zp, int lo, int hi) {
  detail::GemmRequantizeParams p;
  p.acc = acc.data();
  p.ld_acc = ld_acc;
  p.rows = rows;
  p.cols = cols;
  p.multiplier = mul.data();
  p.shift = sh.data();
  p.bias = bias;
  p.zero_point = zp;
  p.qmin = lo;
  p.qmax = hi;
  return p;
}

class GemmStageTest : public testing::IsaTest {
 protected:
  std::mt19937 rng_{99};
};

// The stage functions alone, fed with extreme accumulators, biases, shifts
// and multipliers, against the scalar definition.
TEST_P(GemmStageTest, RequantizeKernelMatchesScalarOnExtremes) {
  const auto& k = detail::gemm_kernels(GetParam());
  const std::vector<int32_t> specials = {std::numeric_limits<int32_t>::min(),
                                         std::numeric_limits<int32_t>::min() + 1,
                                         -65536,
                                         -32769,
                                         -1,
                                         0,
                                         1,
                                         2,
                                         3,
                                         32767,
                                         65535,
                                         (1 << 30) + 5,
                                         std::numeric_limits<int32_t>::max() - 1,
                                         std::numeric_limits<int32_t>::max()};
  std::uniform_int_distribution<int32_t> any(std::numeric_limits<int32_t>::min(),
                                             std::numeric_limits<int32_t>::max());
  std::uniform_int_distribution<int> shift_dist(-31, 30);
  for (int cols : {1, 7, 8, 15, 16, 17, 33, 64}) {
    const int rows = 5;
    std::vector<int32_t> acc(static_cast<std::size_t>(rows * cols));
    for (std::size_t i = 0; i < acc.size(); ++i) {
      acc[i] = i % 3 == 0 ? specials[i % specials.size()] : any(rng_) >> (i % 24);
    }
    std::vector<int32_t> mul(cols), sh(cols), bias(cols);
    for (int j = 0; j < cols; ++j) {
      const int32_t mults[] = {0, 1 << 30, (1 << 30) + 12345, std::numeric_limits<int32_t>::max()};
      mul[j] = j % 5 == 4 ? mults[j % 4] : (1 << 30) + (any(rng_) & 0x3FFFFFFF);
      sh[j] = j % 4 == 0 ? (j % 8 == 0 ? -31 : 30) : shift_dist(rng_);
      bias[j] = j % 6 == 1 ? specials[j % specials.size()] : any(rng_) >> 8;
    }
    for (bool with_bias : {false, true}) {
      for (auto [zp, lo, hi, is_signed] :
           {std::tuple{0, -128, 127, true}, std::tuple{-7, -100, 90, true},
            std::tuple{128, 0, 255, false}, std::tuple{255, 10, 255, false}}) {
        detail::GemmRequantizeParams p = requantize_params(
            acc, cols, rows, cols, mul, sh, with_bias ? bias.data() : nullptr, zp, lo, hi);
        std::vector<uint8_t> out(static_cast<std::size_t>(rows * (cols + 3)), 0xAB);
        p.out = out.data();
        p.ld_out = cols + 3;
        (is_signed ? k.requantize_s8 : k.requantize_u8)(p);
        for (int i = 0; i < rows; ++i) {
          for (int j = 0; j < cols + 3; ++j) {
            const uint8_t got = out[static_cast<std::size_t>(i * (cols + 3) + j)];
            if (j >= cols) {
              ASSERT_EQ(got, 0xAB) << "wrote past cols";
              continue;
            }
            const int64_t x =
                int64_t{acc[static_cast<std::size_t>(i * cols + j)]} + (with_bias ? bias[j] : 0);
            const int32_t want =
                requantize(sat32(x), QuantizedMultiplier{mul[j], sh[j]}, zp, lo, hi);
            const int32_t have = is_signed ? int32_t{static_cast<int8_t>(got)} : int32_t{got};
            ASSERT_EQ(have, want) << "cols=" << cols << " (" << i << "," << j
                                  << ") acc=" << acc[static_cast<std::size_t>(i * cols + j)]
                                  << " m=" << mul[j] << " shift=" << sh[j];
          }
        }
      }
    }
  }
}

// The stage functions with a residual, and with the shift patterns SIMD
// stages may special-case per 8-column block: all right shifts (or 0), all
// left, mixed; residual shifts all in [0, 23] (r - zp_r << 23 cannot
// overflow), 24..30 (saturates), mixed with right shifts. Row counts 1..7
// and tails cover every row grouping; biases near the int32 limits make
// bias + residual overflow int32 (the sum saturates once, in int64).
TEST_P(GemmStageTest, RequantizeKernelShiftPatternsAndResidual) {
  const auto& k = detail::gemm_kernels(GetParam());
  std::uniform_int_distribution<int32_t> any(std::numeric_limits<int32_t>::min(),
                                             std::numeric_limits<int32_t>::max());
  std::uniform_int_distribution<int32_t> mult(1 << 30, std::numeric_limits<int32_t>::max());
  std::uniform_int_distribution<int> byte(0, 255);
  // Shift of column j for each pattern: blocks of 8 columns take turns.
  // Residual patterns: 0 all in [0, 23]; 1 one or two lanes at 24..30, the
  // others in [0, 23] (column 2 of each block: exactly 24, see below);
  // 2 anything, right shifts included.
  auto main_shift = [&](int j) {
    std::uniform_int_distribution<int> right(-31, 0), left(1, 30), mixed(-31, 30);
    switch ((j / 8) % 3) {
      case 0:
        return j % 8 == 0 ? -31 : j % 8 == 1 ? 0 : right(rng_);
      case 1:
        return j % 8 == 0 ? 30 : left(rng_);
      default:
        return j % 8 == 0 ? 1 : j % 8 == 1 ? -1 : mixed(rng_);
    }
  };
  auto residual_shift = [&](int j, int pattern) {
    std::uniform_int_distribution<int> exact(0, 23), sat(24, 30), mixed(-31, 30);
    if (pattern == 0) return j % 8 == 0 ? 23 : j % 8 == 1 ? 0 : exact(rng_);
    if (pattern == 1) return j % 8 == 0 ? 24 : j % 8 == 1 ? sat(rng_) : exact(rng_);
    return j % 8 == 0 ? -31 : j % 8 == 1 ? 23 : mixed(rng_);
  };
  for (int cols : {8, 24, 29}) {
    for (int rows : {1, 2, 3, 6, 7}) {
      const int64_t ld_acc = cols + 2;
      std::vector<int32_t> acc(static_cast<std::size_t>(rows * ld_acc));
      for (std::size_t i = 0; i < acc.size(); ++i) {
        // Whole range, near-saturating values and small ones.
        const int kind = static_cast<int>(i % 4);
        acc[i] = kind == 0   ? any(rng_)
                 : kind == 1 ? (any(rng_) < 0 ? std::numeric_limits<int32_t>::min() + byte(rng_)
                                              : std::numeric_limits<int32_t>::max() - byte(rng_))
                             : any(rng_) >> (8 + i % 20);
      }
      for (int res_pattern : {-1, 0, 1, 2}) {  // -1: no residual
        std::vector<int32_t> mul(cols), sh(cols), bias(cols), rmul(cols), rsh(cols);
        for (int j = 0; j < cols; ++j) {
          mul[j] = j % 7 == 6 ? 0 : mult(rng_);
          sh[j] = main_shift(j);
          bias[j] = j % 3 == 0   ? std::numeric_limits<int32_t>::max() - byte(rng_)
                    : j % 3 == 1 ? std::numeric_limits<int32_t>::min() + byte(rng_)
                                 : any(rng_) >> 10;
          rmul[j] = j % 9 == 8 ? 0 : mult(rng_);
          rsh[j] = residual_shift(j, res_pattern);
          if (j % 8 == 2) {
            // A column whose outputs mostly do not saturate, so that the
            // residual term's value shows: a small bias, a right shift
            // (a left one in the all-left block), the residual shift at the
            // edges of the patterns (23, 24, -1).
            sh[j] = (j / 8) % 3 == 1 ? 1 : -24;
            bias[j] = any(rng_) >> 16;
            rsh[j] = res_pattern == 0 ? 23 : res_pattern == 1 ? 24 : -1;
          }
        }
        const int64_t ld_res = cols + 3;
        std::vector<uint8_t> res(static_cast<std::size_t>(rows * ld_res));
        for (std::size_t i = 0; i < res.size(); ++i) {
          res[i] = static_cast<uint8_t>(i % 5 == 0 ? (i % 2 ? 0 : 255) : byte(rng_));
        }
        for (auto [zp, lo, hi, is_signed, rzp, res_signed] :
             {std::tuple{0, -128, 127, true, -128, true},
              std::tuple{-7, -100, 90, true, 255, false}, std::tuple{128, 0, 255, false, 127, true},
              std::tuple{255, 10, 255, false, 0, false}}) {
          detail::GemmRequantizeParams p =
              requantize_params(acc, ld_acc, rows, cols, mul, sh, bias.data(), zp, lo, hi);
          if (res_pattern >= 0) {
            p.residual = res.data();
            p.residual_ld = ld_res;
            p.residual_signed = res_signed;
            p.residual_zero_point = rzp;
            p.residual_multiplier = rmul.data();
            p.residual_shift = rsh.data();
          }
          const int64_t ld_out = cols + 3;
          std::vector<uint8_t> out(static_cast<std::size_t>(rows * ld_out), 0xAB);
          p.out = out.data();
          p.ld_out = ld_out;
          (is_signed ? k.requantize_s8 : k.requantize_u8)(p);
          for (int i = 0; i < rows; ++i) {
            for (int j = 0; j < ld_out; ++j) {
              const uint8_t got = out[static_cast<std::size_t>(i * ld_out + j)];
              if (j >= cols) {
                ASSERT_EQ(got, 0xAB) << "wrote past cols";
                continue;
              }
              int64_t x = int64_t{acc[static_cast<std::size_t>(i * ld_acc + j)]} + bias[j];
              if (res_pattern >= 0) {
                const uint8_t b = res[static_cast<std::size_t>(i * ld_res + j)];
                const int32_t r = res_signed ? int32_t{static_cast<int8_t>(b)} : int32_t{b};
                x +=
                    multiply_by_quantized_multiplier(r - rzp, QuantizedMultiplier{rmul[j], rsh[j]});
              }
              const int32_t want =
                  requantize(sat32(x), QuantizedMultiplier{mul[j], sh[j]}, zp, lo, hi);
              const int32_t have = is_signed ? int32_t{static_cast<int8_t>(got)} : int32_t{got};
              ASSERT_EQ(have, want) << "rows=" << rows << " cols=" << cols << " residual pattern "
                                    << res_pattern << " (" << i << "," << j
                                    << ") acc=" << acc[static_cast<std::size_t>(i * ld_acc + j)]
                                    << " bias=" << bias[j] << " m=" << mul[j] << " shift=" << sh[j]
                                    << " rm=" << rmul[j] << " rshift=" << rsh[j];
            }
          }
        }
      }
    }
  }
}

// Full GEMMs with the requantizing stage, per tensor and per channel.
TEST_P(GemmStageTest, RequantizedGemmMatchesInt64Reference) {
  for (auto [m, n, k] :
       {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {7, 70, 33}, {13, 129, 260}}) {
    const auto a = random_bytes<int8_t>(static_cast<std::size_t>(m * k), rng_);
    const auto w = random_bytes<int8_t>(static_cast<std::size_t>(n * k), rng_);
    const PackedWeights packed = pack_weights(w.data(), n, k, WeightLayout::out_in);
    testing::check_requantized_gemm(a, w, packed, m, n, k);
  }
}

// Dequantized output: identical floats on every ISA (one product, one fma),
// and within a few float roundings of FP64 math.
TEST_P(GemmStageTest, DequantizedGemmMatchesFp64) {
  const int64_t m = 11;
  const int64_t n = 77;
  const int64_t k = 300;
  const auto a = random_bytes<uint8_t>(static_cast<std::size_t>(m * k), rng_);
  const auto w = random_bytes<int8_t>(static_cast<std::size_t>(n * k), rng_);
  std::vector<float> scales(static_cast<std::size_t>(n));
  for (int64_t j = 0; j < n; ++j) scales[static_cast<std::size_t>(j)] = 0.001f * (1 + j % 7);
  const PackedWeights packed = pack_weights(w.data(), n, k, WeightLayout::out_in, 0, scales);
  DequantizeStage stage;
  stage.activation_scale = 0.0173f;
  for (int64_t j = 0; j < n; ++j) stage.bias.push_back(0.25f * static_cast<float>(j % 9) - 1.0f);
  const auto ref = reference_gemm(a.data(), m, k, k, 131, w.data(), n);
  for (bool relu : {false, true}) {
    stage.relu = relu;
    std::vector<float> c(static_cast<std::size_t>(m * n));
    std::vector<float> c_scalar(c.size());
    gemm(ActivationsU8{a.data(), m, k, 0, 131}, packed, stage, c.data());
    {
      ScopedIsa scalar(Isa::scalar);
      const PackedWeights ps = pack_weights(w.data(), n, k, WeightLayout::out_in, 0, scales);
      gemm(ActivationsU8{a.data(), m, k, 0, 131}, ps, stage, c_scalar.data());
    }
    for (std::size_t idx = 0; idx < c.size(); ++idx) {
      const auto j = idx % static_cast<std::size_t>(n);
      double want =
          static_cast<double>(ref[idx]) * double{stage.activation_scale} * double{scales[j]} +
          double{stage.bias[j]};
      if (relu && want < 0) want = 0;
      // float(acc) (|acc| < 2^24 here: exact), the float product of the two
      // scales and the fma each round once: 3 half-ulps of the larger term.
      const double mag =
          std::fabs(static_cast<double>(ref[idx]) * stage.activation_scale * scales[j]) +
          std::fabs(stage.bias[j]);
      ASSERT_NEAR(c[idx], want, 3 * 0.5 * std::ldexp(mag, -23) + 1e-30) << idx;
      ASSERT_EQ(c[idx], c_scalar[idx]) << "differs from the scalar ISA at " << idx;
    }
  }
}

// K beyond the int32 bound: the int64 sums go through the same stages.
TEST_P(GemmStageTest, StagesOnTheSplitKPath) { testing::check_stages_on_split_k(); }

// linear_dynamic refuses a NaN or an infinity at any position of any row
// (vector bodies and tails of the dispatched min/max kernel), per call and
// per row. Its rounding, ties included, is tests/unit/one_quantize_test.cpp's.
TEST_P(GemmStageTest, LinearDynamicRefusesNonFiniteInputs) {
  const std::vector<int8_t> w(16 * 100, 1);
  for (int64_t n : {1, 15, 16, 17, 100}) {
    const PackedWeights packed = pack_weights(w.data(), 16, n, WeightLayout::out_in);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    std::vector<float> x(static_cast<std::size_t>(2 * n));
    for (float& v : x) v = normal(rng_);
    std::vector<float> y(2 * 16);
    for (bool per_row : {false, true}) {
      linear_dynamic(x.data(), 2, n, packed, {}, y.data(), 0, {per_row, false, 0});  // fine
      for (int64_t pos : {int64_t{0}, n / 2, n - 1, n, 2 * n - 1}) {
        for (float bad : {NAN, INFINITY, -INFINITY}) {
          std::vector<float> xb = x;
          xb[static_cast<std::size_t>(pos)] = bad;
          EXPECT_THROW(
              linear_dynamic(xb.data(), 2, n, packed, {}, y.data(), 0, {per_row, false, 0}), Error)
              << "n=" << n << " pos=" << pos << " per_row=" << per_row;
        }
      }
    }
  }
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(GemmStageTest);

}  // namespace
}  // namespace sparq
