// The public GEMM API: argument validation, packing layouts and metadata,
// repacking when the ISA changes, threads, and linear_dynamic against FP64.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <concepts>
#include <functional>
#include <random>
#include <type_traits>
#include <vector>

#include "kernels/gemm_test_support.hpp"
#include "sparq/detail/packed_weights_data.hpp"
#include "sparq/gemm/gemm.hpp"
#include "sparq/gemm/sparse_gemm.hpp"
#include "sparq/quant/qparams.hpp"
#include "sparq/threads.hpp"
#include "support/error_of.hpp"
#include "support/isa_param.hpp"

namespace sparq {
namespace {

using testing::random_bytes;
using testing::reference_gemm;

using testing::error_of;

// gemm() is one constrained template: the documented (activations, weights,
// stage, output) combinations compile, the others must not (a regression
// here would let a stage write the wrong element type).
template <class Stage, class Out, class W = PackedWeights, class T = uint8_t>
constexpr bool gemm_compiles = requires(const Activations<T>& a, const W& w, const Stage& s,
                                        Out* c) {
  gemm(a, w, s, c);
};
static_assert(gemm_compiles<Int32Output, int32_t>);
static_assert(gemm_compiles<RequantizeStage, uint8_t>);
static_assert(gemm_compiles<RequantizeStage, int8_t, PackedWeights, int8_t>);
static_assert(gemm_compiles<DequantizeStage, float>);
static_assert(gemm_compiles<Int32Output, int32_t, PackedSparseWeights>);
static_assert(gemm_compiles<DequantizeStage, float, PackedSparseWeights, int8_t>);
static_assert(!gemm_compiles<Int32Output, float>);
static_assert(!gemm_compiles<DequantizeStage, int32_t>);
static_assert(!gemm_compiles<RequantizeStage, int32_t>);
static_assert(!gemm_compiles<RequantizeStage, uint16_t, PackedSparseWeights>);
static_assert(!gemm_compiles<DequantizeStage, float, std::vector<int8_t>>);
static_assert(!gemm_compiles<DequantizeStage, float, PackedWeights, int16_t>);
static_assert(std::is_void_v<decltype(gemm(ActivationsU8{}, PackedWeights{}, Int32Output{},
                                           static_cast<int32_t*>(nullptr)))>);
static_assert(std::same_as<decltype(gemm(ActivationsU8{}, PackedSparseWeights{}, Int32Output{},
                                         static_cast<int32_t*>(nullptr))),
                           SparsePath>);

TEST(GemmApi, PackWeightsValidatesArguments) {
  const std::vector<int8_t> w(64, 1);
  EXPECT_THROW(pack_weights(nullptr, 4, 4, WeightLayout::out_in), Error);
  EXPECT_THAT(error_of([&] { pack_weights(w.data(), 0, 4, WeightLayout::out_in); }),
              ::testing::HasSubstr("n (0) must be >= 1"));
  EXPECT_THROW(pack_weights(w.data(), 4, 0, WeightLayout::out_in), Error);
  EXPECT_THAT(error_of([&] { pack_weights(w.data(), 4, 8, WeightLayout::out_in, 5); }),
              ::testing::HasSubstr("ld (5) must be >= 8"));
  EXPECT_THROW(pack_weights(w.data(), 8, 4, WeightLayout::in_out, 7), Error);
  const std::vector<float> two = {1.0f, 2.0f};
  EXPECT_THAT(error_of([&] { pack_weights(w.data(), 4, 4, WeightLayout::out_in, 0, two); }),
              ::testing::HasSubstr("scales has 2 values"));
  const std::vector<float> bad = {1.0f, 0.0f, 1.0f, 1.0f};
  EXPECT_THAT(error_of([&] { pack_weights(w.data(), 4, 4, WeightLayout::out_in, 0, bad); }),
              ::testing::HasSubstr("scales[1] (0) must be finite and > 0"));
  const std::vector<float> nan = {NAN};
  EXPECT_THROW(pack_weights(w.data(), 4, 4, WeightLayout::out_in, 0, nan), Error);
}

TEST(GemmApi, LayoutsStridesAndMetadataAgree) {
  std::mt19937 rng(5);
  const int64_t n = 37;
  const int64_t k = 53;
  const auto w = random_bytes<int8_t>(static_cast<std::size_t>(n * k), rng);
  // The same matrix as [in][out] with a padded leading dimension.
  const int64_t ld = n + 6;
  std::vector<int8_t> t(static_cast<std::size_t>(k * ld), 99);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t kk = 0; kk < k; ++kk) t[static_cast<std::size_t>(kk * ld + j)] = w[j * k + kk];
  }
  // ... and as [out][in] with a padded leading dimension.
  const int64_t ld2 = k + 3;
  std::vector<int8_t> s(static_cast<std::size_t>(n * ld2), -99);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t kk = 0; kk < k; ++kk) s[static_cast<std::size_t>(j * ld2 + kk)] = w[j * k + kk];
  }
  const std::vector<float> scale = {0.5f};
  const PackedWeights a = pack_weights(w.data(), n, k, WeightLayout::out_in, 0, scale);
  const PackedWeights b = pack_weights(t.data(), n, k, WeightLayout::in_out, ld, scale);
  const PackedWeights c = pack_weights(s.data(), n, k, WeightLayout::out_in, ld2, scale);
  EXPECT_EQ(detail::unpack_weights(a.data()), w);
  EXPECT_EQ(detail::unpack_weights(b.data()), w);
  EXPECT_EQ(detail::unpack_weights(c.data()), w);
  EXPECT_EQ(a.n(), n);
  EXPECT_EQ(a.k(), k);
  EXPECT_FALSE(a.per_channel());
  ASSERT_EQ(a.scales().size(), static_cast<std::size_t>(n));
  for (float v : a.scales()) EXPECT_EQ(v, 0.5f);
  ASSERT_EQ(a.column_sums().size(), static_cast<std::size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    int32_t sum = 0;
    for (int64_t kk = 0; kk < k; ++kk) sum += w[j * k + kk];
    EXPECT_EQ(a.column_sums()[static_cast<std::size_t>(j)], sum);
  }
  EXPECT_EQ(a.isa(), active_isa());
  const auto& d = a.data();
  EXPECT_EQ(a.packed_bytes(), static_cast<std::size_t>(d.n_panels * d.kp * d.nr) +
                                  d.col_sums.size() * sizeof(int32_t));
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(d.panels.data()) % 64, 0u);
  std::vector<float> per(static_cast<std::size_t>(n), 0.25f);
  EXPECT_TRUE(pack_weights(w.data(), n, k, WeightLayout::out_in, 0, per).per_channel());
  EXPECT_TRUE(PackedWeights().empty());
}

TEST(GemmApi, GemmValidatesArguments) {
  const std::vector<int8_t> w(12, 1);
  const PackedWeights p = pack_weights(w.data(), 3, 4, WeightLayout::out_in);
  const std::vector<uint8_t> a(8, 1);
  const std::vector<int8_t> as(8, 1);
  std::vector<int32_t> c(6);
  EXPECT_THAT(error_of([&] {
                gemm(ActivationsU8{a.data(), 2, 5, 0, 0}, p, Int32Output{}, c.data());
              }),
              ::testing::HasSubstr("a.k (5) must equal the weights' k (4)"));
  EXPECT_THROW(gemm(ActivationsU8{a.data(), 2, 4, 3, 0}, p, Int32Output{}, c.data()), Error);
  EXPECT_THROW(gemm(ActivationsU8{a.data(), -1, 4, 0, 0}, p, Int32Output{}, c.data()), Error);
  EXPECT_THROW(gemm(ActivationsU8{nullptr, 2, 4, 0, 0}, p, Int32Output{}, c.data()), Error);
  EXPECT_THAT(error_of([&] {
                gemm(ActivationsU8{a.data(), 2, 4, 0, 256}, p, Int32Output{}, c.data());
              }),
              ::testing::HasSubstr("a.zero_point (256) must be in [0, 255]"));
  EXPECT_THROW(gemm(ActivationsS8{as.data(), 2, 4, 0, 128}, p, Int32Output{}, c.data()), Error);
  EXPECT_THROW(gemm(ActivationsU8{a.data(), 2, 4, 0, 0}, p, Int32Output{}, c.data(), 2), Error);
  EXPECT_THROW(
      gemm(ActivationsU8{a.data(), 2, 4, 0, 0}, p, Int32Output{}, static_cast<int32_t*>(nullptr)),
      Error);
  EXPECT_THROW(gemm(ActivationsU8{a.data(), 2, 4, 0, 0}, PackedWeights(), Int32Output{}, c.data()),
               Error);
  gemm(ActivationsU8{a.data(), 0, 4, 0, 0}, p, Int32Output{}, c.data());  // m = 0: nothing to do

  RequantizeStage r;
  std::vector<int8_t> c8(6);
  EXPECT_THAT(error_of([&] {
                gemm(ActivationsU8{a.data(), 2, 4, 0, 0}, p, r, c8.data());
              }),
              ::testing::HasSubstr("multipliers has 0 values"));
  r.multipliers = {quantize_multiplier(0.5)};
  r.bias = {1, 2};
  EXPECT_THROW(gemm(ActivationsU8{a.data(), 2, 4, 0, 0}, p, r, c8.data()), Error);
  r.bias = {};
  r.clamp_min = 0;
  r.clamp_max = 255;  // out of the int8 range
  EXPECT_THROW(gemm(ActivationsU8{a.data(), 2, 4, 0, 0}, p, r, c8.data()), Error);
  std::vector<uint8_t> cu(6);
  r.output_zero_point = -1;  // u8 output zero point below 0
  EXPECT_THROW(gemm(ActivationsU8{a.data(), 2, 4, 0, 0}, p, r, cu.data()), Error);
  r.output_zero_point = 0;
  r.multipliers = {QuantizedMultiplier{-5, 0}};
  EXPECT_THROW(gemm(ActivationsU8{a.data(), 2, 4, 0, 0}, p, r, cu.data()), Error);

  DequantizeStage d;
  d.bias = {1.0f};
  std::vector<float> cf(6);
  EXPECT_THROW(gemm(ActivationsU8{a.data(), 2, 4, 0, 0}, p, d, cf.data()), Error);
  d.bias = {};
  d.activation_scale = INFINITY;
  EXPECT_THROW(gemm(ActivationsU8{a.data(), 2, 4, 0, 0}, p, d, cf.data()), Error);

  std::vector<float> x(8, 1.0f);
  EXPECT_THROW(linear_dynamic(x.data(), 2, 3, p, {}, cf.data()), Error);
  x[3] = NAN;
  EXPECT_THAT(error_of([&] { linear_dynamic(x.data(), 2, 4, p, {}, cf.data()); }),
              ::testing::HasSubstr("NaN or infinity"));
}

TEST(GemmApi, ThreadSetting) {
  const int before = num_threads();
  EXPECT_GE(before, 1);
  set_num_threads(3);
  EXPECT_EQ(num_threads(), 3);
  set_num_threads(0);
  EXPECT_EQ(num_threads(), before);
  EXPECT_THROW(set_num_threads(-1), Error);
}

class GemmApiIsaTest : public testing::IsaTest {};

// Weights packed for one ISA still give exact results under another one.
TEST_P(GemmApiIsaTest, RepacksWhenTheIsaChanged) {
  std::mt19937 rng(8);
  const int64_t m = 5;
  const int64_t n = 70;
  const int64_t k = 45;
  const auto a = random_bytes<uint8_t>(static_cast<std::size_t>(m * k), rng);
  const auto w = random_bytes<int8_t>(static_cast<std::size_t>(n * k), rng);
  for (Isa other : supported_isas()) {
    PackedWeights p;
    {
      ScopedIsa packing(other);
      p = pack_weights(w.data(), n, k, WeightLayout::out_in);
    }
    std::vector<int32_t> c(static_cast<std::size_t>(m * n));
    gemm(ActivationsU8{a.data(), m, k, 0, 17}, p, Int32Output{}, c.data());
    const auto ref = reference_gemm(a.data(), m, k, k, 17, w.data(), n);
    for (std::size_t i = 0; i < c.size(); ++i) ASSERT_EQ(c[i], ref[i]) << isa_name(other);
  }
}

// linear_dynamic == quantize x with compute_qparams (u8, asymmetric, per
// tensor or per row), exact integer GEMM, dequantize: checked against that
// computation in FP64, and loosely against the float product x * W^T.
TEST_P(GemmApiIsaTest, LinearDynamicMatchesFp64) {
  std::mt19937 rng(21);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t m = 9;
  const int64_t n = 66;
  const int64_t k = 130;
  const int64_t ldx = k + 2;
  std::vector<float> x(static_cast<std::size_t>(m * ldx));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = normal(rng) * (1.0f + (i / ldx) % 3);
  const auto w = random_bytes<int8_t>(static_cast<std::size_t>(n * k), rng);
  std::vector<float> ws(static_cast<std::size_t>(n));
  for (int64_t j = 0; j < n; ++j) ws[static_cast<std::size_t>(j)] = 0.01f + 0.001f * (j % 5);
  std::vector<float> bias(static_cast<std::size_t>(n));
  for (int64_t j = 0; j < n; ++j) bias[static_cast<std::size_t>(j)] = 0.1f * (j % 4) - 0.15f;
  const PackedWeights p = pack_weights(w.data(), n, k, WeightLayout::out_in, 0, ws);
  for (bool per_row : {false, true}) {
    for (bool relu : {false, true}) {
      const int64_t ldy = n + 1;
      std::vector<float> y(static_cast<std::size_t>(m * ldy), -5.0f);
      linear_dynamic(x.data(), m, ldx, p, bias, y.data(), ldy, DynamicOptions{per_row, relu, 2});
      QuantSpec spec;
      spec.dtype = DType::u8;
      spec.scheme = Scheme::asymmetric;
      for (int64_t i = 0; i < m; ++i) {
        float mn = 0, mx = 0;
        for (int64_t r = per_row ? i : 0; r < (per_row ? i + 1 : m); ++r) {
          for (int64_t kk = 0; kk < k; ++kk) {
            mn = std::min(mn, x[r * ldx + kk]);
            mx = std::max(mx, x[r * ldx + kk]);
          }
        }
        const QParams qp = compute_qparams(mn, mx, spec);
        for (int64_t j = 0; j < n; ++j) {
          int64_t acc = 0;
          double exact = 0;
          for (int64_t kk = 0; kk < k; ++kk) {
            const float xv = x[i * ldx + kk];
            const double q =
                std::clamp(std::nearbyint(double{xv} / qp.scale) + qp.zero_point, 0.0, 255.0);
            acc += (static_cast<int64_t>(q) - qp.zero_point) * w[j * k + kk];
            exact += double{xv} * w[j * k + kk] * ws[static_cast<std::size_t>(j)];
          }
          double want = static_cast<double>(acc) * qp.scale * ws[static_cast<std::size_t>(j)] +
                        bias[static_cast<std::size_t>(j)];
          exact += bias[static_cast<std::size_t>(j)];
          if (relu) {
            want = std::max(want, 0.0);
            exact = std::max(exact, 0.0);
          }
          const float got = y[static_cast<std::size_t>(i * ldy + j)];
          // float(acc), the scale product and the fma round once each (a
          // half-ulp of the magnitude each); x / scale in float may round a
          // value at a .5 boundary the other way than FP64 does, moving acc by
          // up to |w| * scale per element, so allow a couple of those too.
          const double mag = std::fabs(static_cast<double>(acc) * qp.scale * ws[j]) +
                             std::fabs(bias[static_cast<std::size_t>(j)]);
          const double tol = 1.5 * std::ldexp(mag, -23) + 2 * 128 * qp.scale * ws[j];
          ASSERT_NEAR(got, want, tol) << "per_row=" << per_row << " (" << i << "," << j << ")";
          // Quantization error: at most half a step per element.
          ASSERT_NEAR(got, exact, 0.5 * qp.scale * 128 * ws[j] * k + 1e-3);
        }
        EXPECT_EQ(y[static_cast<std::size_t>(i * ldy + n)], -5.0f);
      }
    }
  }
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(GemmApiIsaTest);

}  // namespace
}  // namespace sparq
