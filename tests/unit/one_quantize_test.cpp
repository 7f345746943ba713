// One definition of "quantize a float" (docs/design.md, "Rounding"): the
// same tensor quantized by sparq::quantize, by linear_dynamic, by a dynamic
// nn::QLinear and by a dynamic nn::QConv2d gets the same u8 values, exact
// ties (x / scale exactly half-way between two integers in float) included.
//
// The dynamic paths do not expose their u8 activations, so each runs with
// identity weights: output j of row i is then (q[i][j] - zp) times a product
// of scales, from which q is recovered exactly (|q - zp| <= 255 and at most
// three float roundings of relative size 2^-24 each: the recovered value is
// within 1e-4 of an integer, far from the 0.5 that rounding would need).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <type_traits>
#include <vector>

#include "sparq/sparq.hpp"
#include "support/isa_param.hpp"

namespace nn = sparq::nn;
using sparq::testing::IsaTest;

namespace {

// Every Quantizer describes itself the same way (detail::QuantizerTraits).
using PerTensorU8 = sparq::Quantizer<uint8_t, sparq::Scheme::asymmetric>;
using PerChannelS8 =
    sparq::Quantizer<int8_t, sparq::Scheme::symmetric, sparq::Granularity::per_channel>;
static_assert(std::is_same_v<PerTensorU8::storage_type, uint8_t>);
static_assert(PerTensorU8::scheme == sparq::Scheme::asymmetric);
static_assert(PerTensorU8::granularity == sparq::Granularity::per_tensor);
static_assert(PerTensorU8::dtype == sparq::DType::u8);
static_assert(std::is_same_v<PerChannelS8::storage_type, int8_t>);
static_assert(PerChannelS8::granularity == sparq::Granularity::per_channel);
static_assert(PerChannelS8::dtype == sparq::DType::s8);

constexpr int64_t kRows = 6;
constexpr int64_t kCols = 48;

/// Values on and between quantization steps of the scale their own range
/// gives: about half are exact ties in float (j + 0.5 steps), the rest
/// random. min and max are pinned so the qparams are known in advance.
std::vector<float> tie_heavy_input() {
  const float lo = -1.7f, hi = 3.1f;
  sparq::QuantSpec spec;
  spec.dtype = sparq::DType::u8;
  spec.scheme = sparq::Scheme::asymmetric;
  const sparq::QParams qp = sparq::compute_qparams(lo, hi, spec);
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> step(-qp.zero_point, 255 - qp.zero_point - 1);
  std::uniform_real_distribution<float> any(lo, hi);
  std::vector<float> x(kRows * kCols);
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = i % 2 == 0 ? (static_cast<float>(step(rng)) + 0.5f) * qp.scale : any(rng);
  }
  x[0] = lo;
  x[1] = hi;
  return x;
}

std::vector<uint8_t> reference_u8(const std::vector<float>& x, sparq::QParams* qp_out) {
  sparq::QuantSpec spec;
  spec.dtype = sparq::DType::u8;
  spec.scheme = sparq::Scheme::asymmetric;
  const auto [lo, hi] = std::minmax_element(x.begin(), x.end());
  const sparq::QParams qp = sparq::compute_qparams(*lo, *hi, spec);
  std::vector<uint8_t> q(x.size());
  const int64_t shape[] = {kRows, kCols};
  sparq::quantize<uint8_t>(x, shape, spec, qp, q);
  *qp_out = qp;
  return q;
}

/// q recovered from y = (q - zp) * s, with s = activation scale x weight
/// scale x quantized weight of an identity layer.
void expect_same_u8(const std::vector<float>& y, float s, int32_t zp,
                    const std::vector<uint8_t>& want, const char* path) {
  ASSERT_EQ(y.size(), want.size()) << path;
  int mismatches = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    const double r = static_cast<double>(y[i]) / s;
    ASSERT_LT(std::fabs(r - std::nearbyint(r)), 1e-3) << path << " element " << i;
    const long q = std::lround(r) + zp;
    if (q != want[i] && ++mismatches <= 5) {
      ADD_FAILURE() << path << ": element " << i << " is " << q << ", quantize gives "
                    << int(want[i]);
    }
  }
  EXPECT_EQ(mismatches, 0) << path;
}

int ties_in(const std::vector<float>& x, float scale) {
  const float inv = 1.0f / scale;
  int ties = 0;
  for (float v : x) {
    const float t = v * inv;
    ties += std::fabs(t - std::trunc(t)) == 0.5f;
  }
  return ties;
}

class OneQuantizeTest : public IsaTest {};

TEST_P(OneQuantizeTest, LinearDynamicMatchesQuantize) {
  const std::vector<float> x = tie_heavy_input();
  sparq::QParams qp;
  const std::vector<uint8_t> want = reference_u8(x, &qp);
  ASSERT_GT(ties_in(x, qp.scale), static_cast<int>(x.size() / 4));  // the input does test ties

  std::vector<int8_t> eye(kCols * kCols, 0);
  for (int64_t j = 0; j < kCols; ++j) eye[j * kCols + j] = 1;
  const sparq::PackedWeights w =
      sparq::pack_weights(eye.data(), kCols, kCols, sparq::WeightLayout::out_in, 0, {});
  std::vector<float> y(x.size());
  sparq::linear_dynamic(x.data(), kRows, 0, w, {}, y.data());
  expect_same_u8(y, qp.scale, qp.zero_point, want, "linear_dynamic");
}

TEST_P(OneQuantizeTest, DynamicQLinearAndQConv2dMatchQuantize) {
  const std::vector<float> x = tie_heavy_input();
  sparq::QParams qp;
  const std::vector<uint8_t> want = reference_u8(x, &qp);

  // Identity weights: s8 symmetric per channel gives scale 1 / 127.5
  // (PyTorch's (max - min) / 2 denominator), and 1.0 quantizes to 127.
  nn::Linear linear(kCols, kCols, /*bias=*/false);
  nn::Conv2d conv(kCols, kCols, 1, {});
  conv.bias = nn::Tensor();
  for (int64_t j = 0; j < kCols; ++j) {
    linear.weight.data[j * kCols + j] = 1.0f;
    conv.weight.data[j * kCols + j] = 1.0f;
  }
  const float w_scale = sparq::compute_qparams(0.0f, 1.0f, sparq::QuantSpec{}).scale;
  const float s = (qp.scale * w_scale) * 127.0f;

  nn::Sequential linear_model;
  linear_model.add(linear);
  const nn::QuantizedModel ql = nn::quantize_dynamic(linear_model);
  const nn::Tensor yl = ql.forward(nn::Tensor({kRows, kCols}, x));
  expect_same_u8(yl.data, s, qp.zero_point, want, "dynamic QLinear");

  nn::Sequential conv_model;
  conv_model.add(conv);
  const nn::QuantizedModel qc = nn::quantize_dynamic(conv_model);
  // NHWC [1, kRows, 1, kCols]: the same values, as pixels.
  const nn::Tensor yc = qc.forward(nn::Tensor({1, kRows, 1, kCols}, x));
  expect_same_u8(yc.data, s, qp.zero_point, want, "dynamic QConv2d");
}

TEST_P(OneQuantizeTest, WeightsQuantizeLikeThePublicQuantizer) {
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0.0f, 0.4f);
  const int64_t n = 5, k = 37;
  std::vector<float> w(n * k);
  for (float& v : w) v = g(rng);
  // Force ties on channel 0: max |w| = 127 steps, values on half steps.
  const float step = 0.01f;
  w[0] = 127 * step;
  for (int64_t i = 1; i < k; ++i) w[i] = (static_cast<float>(i % 50) - 25.5f) * step;

  const nn::QuantizedTensor got = nn::quantize_weights(w, n, k, sparq::Granularity::per_channel);
  sparq::QuantSpec spec;
  spec.granularity = sparq::Granularity::per_channel;
  spec.axis = 0;
  std::vector<float> mins(n), maxs(n);
  for (int64_t r = 0; r < n; ++r) {
    const auto [lo, hi] = std::minmax_element(w.begin() + r * k, w.begin() + (r + 1) * k);
    mins[r] = *lo;
    maxs[r] = *hi;
  }
  const sparq::ChannelQParams qp = sparq::compute_qparams(mins, maxs, spec);
  std::vector<int8_t> want(w.size());
  const int64_t shape[] = {n, k};
  sparq::quantize<int8_t>(w, shape, spec, qp, want);
  EXPECT_EQ(got.values, want);
  EXPECT_EQ(got.scales, qp.scales);
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(OneQuantizeTest);

}  // namespace
