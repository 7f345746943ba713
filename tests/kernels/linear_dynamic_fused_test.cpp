// linear_dynamic quantizes its FP32 rows while the GEMM driver packs them
// (per row: range, quantize, pack, tile by tile on the GEMM's threads). The
// outputs must be bit-identical to the unfused definition on every ISA:
// qparams by detail::dynamic_u8_qparams, u8 values by detail::quantize_tensor
// into a whole quantized matrix, then gemm() with a DequantizeStage; ragged
// row counts (not multiples of the kernel's MR), K not a multiple of KR,
// row strides beyond K, threads 1 and 2 (the driver takes a second thread
// from about 8 M multiply-adds: m = 301, k = 259, n = 130), per row and per
// tensor.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "quant/dynamic_qparams.hpp"
#include "sparq/error.hpp"
#include "sparq/gemm/gemm.hpp"
#include "sparq/quant/quantize.hpp"
#include "support/isa_param.hpp"

namespace sparq {
namespace {

class LinearDynamicFusedTest : public testing::IsaTest {
 protected:
  std::mt19937 rng_{15};
};

// The unfused definition: quantize every row first, then one gemm() per row
// (its own zero point and scale; gemm()'s Activations hold one zero point).
std::vector<float> unfused(const std::vector<float>& x, int64_t m, int64_t k, int64_t ldx,
                           const PackedWeights& w, const std::vector<float>& bias, bool per_row,
                           bool relu) {
  const int64_t n = w.n();
  std::vector<uint8_t> q(static_cast<std::size_t>(m * k));
  std::vector<QParams> qp(static_cast<std::size_t>(m));
  const QParams all = detail::dynamic_u8_qparams(x.data(), m, k, ldx, "test");
  for (int64_t i = 0; i < m; ++i) {
    const auto r = static_cast<std::size_t>(i);
    qp[r] = per_row ? detail::dynamic_u8_qparams(x.data() + i * ldx, 1, k, ldx, "test") : all;
    detail::quantize_tensor(DType::u8, x.data() + i * ldx, q.data() + i * k,
                            static_cast<std::size_t>(k), 1.0f / qp[r].scale, qp[r].zero_point, 0,
                            255);
  }
  std::vector<float> y(static_cast<std::size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    const auto r = static_cast<std::size_t>(i);
    DequantizeStage stage;
    stage.activation_scale = qp[r].scale;
    stage.bias = bias;
    stage.relu = relu;
    const ActivationsU8 a{q.data() + i * k, 1, k, k, qp[r].zero_point};
    gemm(a, w, stage, y.data() + i * n, n, GemmOptions{1});
  }
  return y;
}

// Rows of several kinds: normal values, a constant row (range [0, c]), an
// all-zero row, rows whose values sit exactly halfway between two
// quantization steps (the ties quantize_tensor rounds to even), large values.
std::vector<float> make_rows(std::mt19937& rng, int64_t m, int64_t k, int64_t ldx) {
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> x(static_cast<std::size_t>(m * ldx), std::numeric_limits<float>::quiet_NaN());
  for (int64_t i = 0; i < m; ++i) {
    float* row = x.data() + i * ldx;
    for (int64_t j = 0; j < k; ++j) {
      switch (i % 5) {
        case 0:
          row[j] = normal(rng);
          break;
        case 1:
          row[j] = 0.75f;
          break;
        case 2:
          row[j] = 0.0f;
          break;
        case 3:
          // Range [-2.55, 2.55] over 255 steps of 0.02: j * 0.01 - 1.27 lands
          // on half steps for odd j (as nearly as float allows).
          row[j] = j == 0 ? -2.55f : (j == 1 ? 2.55f : static_cast<float>(j % 255) * 0.01f - 1.27f);
          break;
        default:
          row[j] = 1000.0f * normal(rng);
          break;
      }
    }
  }
  return x;  // the padding beyond k is NaN: reading it would throw
}

TEST_P(LinearDynamicFusedTest, BitIdenticalToQuantizeThenGemm) {
  std::uniform_int_distribution<int> byte(-128, 127);
  for (int64_t k : {1, 3, 17, 64, 100, 259}) {
    for (int64_t n : {1, 19, 33, 130}) {
      std::vector<int8_t> wq(static_cast<std::size_t>(n * k));
      for (int8_t& v : wq) v = static_cast<int8_t>(byte(rng_));
      std::vector<float> scales(static_cast<std::size_t>(n));
      for (std::size_t j = 0; j < scales.size(); ++j)
        scales[j] = 0.001f * static_cast<float>(j + 1);
      const PackedWeights w = pack_weights(wq.data(), n, k, WeightLayout::out_in, 0, scales);
      std::vector<float> bias(static_cast<std::size_t>(n));
      for (float& b : bias) b = static_cast<float>(byte(rng_)) * 0.1f;
      for (int64_t m : {1, 5, 7, 13, 37, 301}) {
        const int64_t ldx = k + (m % 2 == 0 ? 0 : 3);
        const std::vector<float> x = make_rows(rng_, m, k, ldx);
        for (bool per_row : {true, false}) {
          for (bool relu : {false, true}) {
            const std::vector<float> want =
                unfused(x, m, k, ldx, w, relu ? bias : std::vector<float>{}, per_row, relu);
            for (int threads : {1, 2}) {
              std::vector<float> y(want.size(), -7.0f);
              linear_dynamic(x.data(), m, ldx, w,
                             relu ? std::span<const float>(bias) : std::span<const float>{},
                             y.data(), 0, DynamicOptions{per_row, relu, threads});
              for (std::size_t e = 0; e < y.size(); ++e) {
                // Bit-identical: compare the bits (the same NaN-free floats).
                ASSERT_EQ(std::bit_cast<uint32_t>(y[e]), std::bit_cast<uint32_t>(want[e]))
                    << "m=" << m << " k=" << k << " n=" << n << " per_row=" << per_row
                    << " relu=" << relu << " threads=" << threads << " at " << e << ": " << y[e]
                    << " vs " << want[e];
              }
            }
          }
        }
      }
    }
  }
}

// A non-finite value is found by the thread that quantizes its row; the
// call throws after the thread team, names the lowest bad row whichever
// thread found it, and writes nothing to y.
TEST_P(LinearDynamicFusedTest, NamesTheFirstNonFiniteRowAndLeavesYUntouched) {
  // 9.6 M multiply-adds: two threads, each packing half of the rows.
  const int64_t m = 400, k = 301, n = 80;
  const std::vector<int8_t> wq(static_cast<std::size_t>(n * k), 3);
  const PackedWeights w = pack_weights(wq.data(), n, k, WeightLayout::out_in);
  std::vector<float> x(static_cast<std::size_t>(m * k), 0.5f);
  x[static_cast<std::size_t>(333 * k + 5)] = std::numeric_limits<float>::infinity();
  x[static_cast<std::size_t>(17 * k + k - 1)] = std::numeric_limits<float>::quiet_NaN();
  for (int threads : {1, 2}) {
    std::vector<float> y(static_cast<std::size_t>(m * n), -7.0f);
    try {
      linear_dynamic(x.data(), m, k, w, {}, y.data(), 0, DynamicOptions{true, false, threads});
      ADD_FAILURE() << "no error with threads=" << threads;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("linear_dynamic: input row 17 holds NaN or infinity"),
                std::string::npos)
          << e.what();
    }
    for (float v : y) ASSERT_EQ(v, -7.0f) << "threads=" << threads;
  }
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(LinearDynamicFusedTest);

}  // namespace
}  // namespace sparq
