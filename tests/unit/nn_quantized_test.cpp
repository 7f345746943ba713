// Quantized layers against their FP32 twins within a bound derived from the
// qparams, whole models (static vs dynamic vs FP32), overrides, the SQNR
// fallback and the error report. Every test runs on every ISA the host supports.
//
// The bound, for one output y = sum_k x_k w_k + b of a layer whose input
// (or im2col patch) is x, with input scale s_a, weight scale s_w (of that
// output channel), int8 weights q_k (w^_k = s_w q_k) and output scale s_y:
//   y - y^ = sum_k [x_k (w_k - w^_k) + (x_k - x^_k) w^_k]      (input/weight rounding)
//          + (b - s_a s_w round(b / (s_a s_w)))                  (static bias rounding)
//          + (s_a s_w (acc + b_q) - y^)                          (static output requantization)
// with |w_k - w^_k| <= s_w / 2 (round to nearest; the clamp to 127 only
// happens for |w| = max|w|, where the error is s_w / 2 as well), |x_k - x^_k|
// <= s_a / 2 (inputs lie in the calibrated/dynamic range; the zero point's
// rounding moves the range ends by at most half a step, which a value there
// loses at most), |bias error| <= s_a s_w / 2, and the output stage's two
// fixed-point roundings (doubling high mul, then rounding shift) plus the same
// half-step range-end effect give <= 1.5 s_y. So
//   |y - y^| <= sum_k (|x_k| s_w + s_a |w^_k|) / 2 + s_a s_w / 2 + 1.5 s_y   (static)
//   |y - y^| <= sum_k (|x_k| s_w + s_a |w^_k|) / 2                            (dynamic)
// plus FP32 rounding of the reference and of the dequantization, bounded by
// (K + 2) * FLT_EPSILON * (sum_k |x_k w_k| + |b| + |y|). ReLU/ReLU6 are
// 1-Lipschitz, so the bound holds after them too.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <random>

#include "sparq/nn/nn.hpp"
#include "support/nn_random.hpp"
#include "support/isa_param.hpp"

namespace nn = sparq::nn;
using sparq::test::random_tensor;
using sparq::testing::IsaTest;

namespace {

nn::CalibrationConfig minmax_config() {
  nn::CalibrationConfig c;
  c.observer.kind = sparq::ObserverKind::minmax;
  return c;
}

/// The im2col patch of output (n, oy, ox) for channel group g, zeros in the padding.
std::vector<float> patch_of(const nn::Conv2dGeometry& c, const nn::Tensor& x, int64_t n, int64_t oy,
                            int64_t ox, int64_t g) {
  const int64_t h = x.shape[1], w = x.shape[2], cg = c.in_channels / c.groups;
  std::vector<float> p;
  for (int64_t ky = 0; ky < c.kernel_h; ++ky)
    for (int64_t kx = 0; kx < c.kernel_w; ++kx)
      for (int64_t ci = 0; ci < cg; ++ci) {
        const int64_t iy = oy * c.stride_h - c.pad_h + ky * c.dilation_h;
        const int64_t ix = ox * c.stride_w - c.pad_w + kx * c.dilation_w;
        p.push_back(iy < 0 || iy >= h || ix < 0 || ix >= w
                        ? 0.0f
                        : x.data[((n * h + iy) * w + ix) * c.in_channels + g * cg + ci]);
      }
  return p;
}

struct Bound {
  double value = 0;
};

/// The bound of the header comment for one output.
double output_bound(std::span<const float> x, std::span<const float> w, std::span<const int8_t> q,
                    float s_w, float s_a, bool is_static, float s_y, float bias, float y) {
  double sum = 0, mag = std::fabs(bias) + std::fabs(y);
  for (std::size_t k = 0; k < x.size(); ++k) {
    sum += (std::fabs(x[k]) * s_w + s_a * std::fabs(s_w * q[k])) / 2.0;
    mag += std::fabs(x[k] * w[k]);
  }
  if (is_static) sum += s_a * s_w / 2.0 + 1.5 * s_y;
  return sum + (x.size() + 2) * FLT_EPSILON * mag;
}

sparq::QParams dynamic_input_qparams(const nn::Tensor& x) {
  float lo = 0, hi = 0;
  for (float v : x.data) lo = std::min(lo, v), hi = std::max(hi, v);
  sparq::QuantSpec spec;
  spec.dtype = sparq::DType::u8;
  spec.scheme = sparq::Scheme::asymmetric;
  return sparq::compute_qparams(lo, hi, spec);
}

nn::QuantizedModel quantize(const nn::Sequential& s, const nn::Tensor& x, bool is_static,
                            sparq::Granularity g = sparq::Granularity::per_channel) {
  if (!is_static) return nn::quantize_dynamic(s, {.weight_granularity = g});
  nn::Calibrator cal(s, minmax_config());
  cal.observe(x);
  return nn::quantize_static(cal, {.weight_granularity = g});
}

}  // namespace

class NnQuantizedLayer : public IsaTest {};

TEST_P(NnQuantizedLayer, LinearWithinQParamBound) {
  std::mt19937 rng(3);
  for (bool is_static : {false, true}) {
    for (auto act : {nn::Activation::none, nn::Activation::relu, nn::Activation::relu6}) {
      for (auto gran : {sparq::Granularity::per_channel, sparq::Granularity::per_tensor}) {
        nn::Sequential s;
        s.add(nn::Linear(45, 19));
        if (act == nn::Activation::relu) s.add(nn::ReLU());
        if (act == nn::Activation::relu6) s.add(nn::ReLU6());
        s.init_parameters(rng());
        auto& lin = std::get<nn::Linear>(s[0]);
        for (float& v : lin.weight.data) v *= 20.0f;  // outputs reach past 6 so ReLU6 clamps
        const nn::Tensor x = random_tensor({7, 45}, rng, -2.0f, 3.0f);
        const nn::QuantizedModel q = quantize(s, x, is_static, gran);
        ASSERT_EQ(q.units().size(), 1u);
        const auto& ql = std::get<nn::QLinear>(q.units()[0].op);
        EXPECT_EQ(ql.activation, act);
        EXPECT_EQ(ql.weights->per_channel(), gran == sparq::Granularity::per_channel);
        const float s_a = is_static ? ql.input_qparams.scale : dynamic_input_qparams(x).scale;
        const nn::Tensor ref = s.forward(x), got = q.forward(x);
        ASSERT_EQ(got.shape, ref.shape);
        double worst = 0;
        for (int64_t i = 0; i < 7; ++i)
          for (int64_t o = 0; o < 19; ++o) {
            const float err = std::fabs(ref.data[i * 19 + o] - got.data[i * 19 + o]);
            const double b = output_bound(
                {x.data.data() + i * 45, 45}, {lin.weight.data.data() + o * 45, 45},
                ql.weights->values().subspan(o * 45, 45), ql.weights->scales()[o], s_a, is_static,
                ql.output_qparams.scale, lin.bias.data[o], ref.data[i * 19 + o]);
            EXPECT_LE(err, b) << "static " << is_static << " i " << i << " o " << o;
            worst = std::max(worst, err / b);
          }
        EXPECT_GT(worst, 0.0);  // quantization did change something: the comparison is live
      }
    }
  }
}

struct QConvCase {
  int64_t in, out, k, stride, pad, dil, groups;
};

class NnQuantizedConv : public ::testing::TestWithParam<std::tuple<sparq::Isa, QConvCase>> {};

TEST_P(NnQuantizedConv, WithinQParamBound) {
  sparq::ScopedIsa guard(std::get<0>(GetParam()));
  const QConvCase p = std::get<1>(GetParam());
  std::mt19937 rng(5);
  for (bool is_static : {false, true}) {
    nn::Sequential s;
    s.add(nn::Conv2d(p.in, p.out, p.k,
                     {.stride = {p.stride, p.stride},
                      .padding = {p.pad, p.pad},
                      .dilation = {p.dil, p.dil},
                      .groups = p.groups}));
    s.add(nn::ReLU());
    s.init_parameters(rng());
    const auto& conv = std::get<nn::Conv2d>(s[0]);
    const nn::Tensor x = random_tensor({2, 7, 6, p.in}, rng, -1.0f, 2.0f);
    const nn::QuantizedModel q = quantize(s, x, is_static);
    const auto& qc = std::get<nn::QConv2d>(q.units()[0].op);
    const float s_a = is_static ? qc.input_qparams.scale : dynamic_input_qparams(x).scale;
    const nn::Tensor ref = s.forward(x), got = q.forward(x);
    ASSERT_EQ(got.shape, ref.shape);
    const int64_t oh = ref.shape[1], ow = ref.shape[2], og = p.out / p.groups,
                  patch = conv.patch_size();
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox)
          for (int64_t o = 0; o < p.out; ++o) {
            const int64_t g = o / og, j = o % og;
            const std::vector<float> px = patch_of(conv, x, n, oy, ox, g);
            const auto idx = ((n * oh + oy) * ow + ox) * p.out + o;
            const double b = output_bound(
                px, {conv.weight.data.data() + o * patch, static_cast<std::size_t>(patch)},
                qc.weights[g]->values().subspan(j * patch, patch), qc.weights[g]->scales()[j], s_a,
                is_static, qc.output_qparams.scale, conv.bias.data[o], ref.data[idx]);
            ASSERT_LE(std::fabs(ref.data[idx] - got.data[idx]), b)
                << "static " << is_static << " at " << n << "," << oy << "," << ox << "," << o;
          }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, NnQuantizedConv,
                         ::testing::Combine(::testing::ValuesIn(sparq::supported_isas()),
                                            ::testing::Values(QConvCase{3, 5, 3, 1, 1, 1, 1},
                                                              QConvCase{4, 6, 3, 2, 0, 1, 1},
                                                              QConvCase{2, 3, 3, 1, 2, 2, 1},
                                                              QConvCase{6, 6, 3, 1, 1, 1, 6},
                                                              QConvCase{4, 8, 3, 2, 1, 1, 4},
                                                              QConvCase{6, 4, 1, 1, 0, 1, 2})),
                         [](const auto& info) {
                           const QConvCase c = std::get<1>(info.param);
                           return std::string(sparq::isa_name(std::get<0>(info.param))) + "_in" +
                                  std::to_string(c.in) + "_out" + std::to_string(c.out) + "_k" +
                                  std::to_string(c.k) + "_s" + std::to_string(c.stride) + "_p" +
                                  std::to_string(c.pad) + "_d" + std::to_string(c.dil) + "_g" +
                                  std::to_string(c.groups);
                         });

namespace {

nn::Sequential small_cnn(uint64_t seed) {
  nn::Sequential s;
  s.add(nn::Conv2d(1, 8, 3, {.padding = {1, 1}}))
      .add(nn::BatchNorm2d(8))
      .add(nn::ReLU())
      .add(nn::MaxPool2d(2))
      .add(nn::Conv2d(8, 8, 3, {.padding = {1, 1}, .groups = 8}))
      .add(nn::ReLU6())
      .add(nn::Conv2d(8, 12, 1))
      .add(nn::ReLU())
      .add(nn::Flatten())
      .add(nn::Linear(7 * 7 * 12, 32))
      .add(nn::ReLU())
      .add(nn::Linear(32, 10));
  s.init_parameters(seed);
  auto& bn = std::get<nn::BatchNorm>(s[1]);
  for (int c = 0; c < 8; ++c) {
    bn.running_mean.data[c] = 0.1f * c;
    bn.running_var.data[c] = 0.5f + 0.1f * c;
    bn.weight.data[c] = 1.0f + 0.05f * c;
  }
  return s;
}

}  // namespace

class NnQuantizedModel : public IsaTest {};

TEST_P(NnQuantizedModel, StaticDynamicAndFp32Agree) {
  std::mt19937 rng(9);
  const nn::Sequential model = small_cnn(1);
  std::vector<nn::Tensor> batches;
  for (int i = 0; i < 3; ++i) batches.push_back(random_tensor({8, 14, 14, 1}, rng, 0.0f, 1.0f));
  nn::Calibrator cal(model, minmax_config());
  for (const auto& b : batches) cal.observe(b);
  const nn::QuantizedModel qs = nn::quantize_static(cal);
  const nn::QuantizedModel qd = nn::quantize_dynamic(model);
  // units: conv+bn+relu, pool, dwconv+relu6, conv1x1+relu, flatten, linear+relu, linear
  ASSERT_EQ(qs.units().size(), 7u);
  EXPECT_EQ(qs.units()[2].name, "4");
  const nn::Tensor x = random_tensor({4, 14, 14, 1}, rng, 0.0f, 1.0f);
  const nn::Tensor y = model.forward(x), ys = qs.forward(x), yd = qd.forward(x);
  // Thresholds: 8-bit quantization of each of five layers costs roughly
  // 35-45 dB each on random data; their errors add up, and ~25 dB (static,
  // which also rounds every activation) / ~30 dB (dynamic) end to end is
  // what such a chain gives. A real bug (wrong zero point, wrong channel)
  // drops the SQNR below 10 dB.
  const double s_static = nn::sqnr_db(y.data, ys.data), s_dyn = nn::sqnr_db(y.data, yd.data);
  EXPECT_GT(s_static, 20.0);
  EXPECT_GT(s_dyn, 25.0);
  EXPECT_LT(s_static, 80.0);  // and they are really quantized
  EXPECT_LT(qs.weight_bytes(), model.weight_bytes());

  const nn::LayerReport report = nn::layer_report(cal, qs);
  ASSERT_EQ(report.layers.size(), 7u);
  for (const auto& e : report.layers) {
    EXPECT_GT(e.cosine, 0.99) << e.name;
    EXPECT_GT(e.sqnr_db, 15.0) << e.name;
  }
  const std::string table = report.table();
  EXPECT_NE(table.find("<- worst"), std::string::npos);
  EXPECT_NE(table.find("QConv2d static relu6"), std::string::npos) << table;
}

TEST_P(NnQuantizedModel, StaticOutputsAreIdenticalOnEveryIsa) {
  std::mt19937 rng(4);
  const nn::Sequential model = small_cnn(2);
  nn::Calibrator cal(model, minmax_config());
  cal.observe(random_tensor({4, 14, 14, 1}, rng, 0.0f, 1.0f));
  const nn::QuantizedModel q = nn::quantize_static(cal);
  const nn::Tensor x = random_tensor({3, 14, 14, 1}, rng, 0.0f, 1.0f);
  const nn::Tensor here = q.forward(x);
  sparq::ScopedIsa scalar(sparq::Isa::scalar);
  EXPECT_EQ(q.forward(x).data, here.data);  // integer pipeline: bit-exact
}

TEST_P(NnQuantizedModel, OverridesAndFallback) {
  std::mt19937 rng(8);
  nn::Sequential model{nn::Linear(16, 32), nn::ReLU(), nn::Linear(32, 32), nn::ReLU(),
                       nn::Linear(32, 4)};
  model.init_parameters(3);
  // One huge weight in layer 2 on an input that is always 0 (channel 5 of
  // layer 0 is ReLU(-1)): it adds nothing to the output, but a per-tensor
  // scale sized for it rounds every other weight of the layer to 0.
  auto& first = std::get<nn::Linear>(model[0]);
  for (int k = 0; k < 16; ++k) first.weight.data[5 * 16 + k] = 0.0f;
  first.bias.data[5] = -1.0f;
  std::get<nn::Linear>(model[2]).weight.data[5] = 400.0f;
  nn::Calibrator cal(model, minmax_config());
  for (int i = 0; i < 2; ++i) cal.observe(random_tensor({16, 16}, rng));
  EXPECT_THROW(nn::quantize_static(cal, {.overrides = {{"1", {}}}}),
               sparq::Error);  // ReLU: not a unit

  nn::StaticConfig keep;
  keep.overrides["4"].keep_fp32 = true;
  const nn::QuantizedModel qk = nn::quantize_static(cal, keep);
  EXPECT_TRUE(std::holds_alternative<nn::Fp32Block>(qk.units()[2].op));
  EXPECT_TRUE(std::holds_alternative<nn::QLinear>(qk.units()[0].op));

  nn::StaticConfig fallback;
  fallback.overrides["2"].weight_granularity = sparq::Granularity::per_tensor;
  const nn::QuantizedModel bad = nn::quantize_static(cal, fallback);
  fallback.fallback_sqnr_db = 20.0;
  const nn::QuantizedModel fixed = nn::quantize_static(cal, fallback);
  EXPECT_TRUE(std::holds_alternative<nn::QLinear>(fixed.units()[0].op));
  EXPECT_TRUE(std::holds_alternative<nn::Fp32Block>(fixed.units()[1].op)) << fixed.summary();
  EXPECT_TRUE(std::holds_alternative<nn::QLinear>(fixed.units()[2].op));
  const nn::Tensor x = random_tensor({8, 16}, rng);
  const nn::Tensor y = model.forward(x);
  EXPECT_GT(nn::sqnr_db(y.data, fixed.forward(x).data),
            nn::sqnr_db(y.data, bad.forward(x).data) + 5.0);
  const nn::LayerReport r = nn::layer_report(cal, bad);
  EXPECT_LT(r.layers[1].isolated_sqnr_db, 20.0);
  EXPECT_NE(r.table().find("<- worst"), std::string::npos);
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(NnQuantizedLayer);
SPARQ_INSTANTIATE_FOR_ALL_ISAS(NnQuantizedModel);

TEST(NnWorkflow, CalibratorErrors) {
  nn::Sequential model{nn::Linear(4, 4), nn::ReLU()};
  model.init_parameters(1);
  nn::Calibrator cal(model);
  EXPECT_THROW(nn::quantize_static(cal), sparq::Error);  // nothing observed
  EXPECT_THROW(cal.observe(nn::Tensor({2, 5})), sparq::Error);
  EXPECT_EQ(cal.batches_observed(), 0);
  nn::CalibrationConfig bad;
  bad.per_layer["7"] = {};
  EXPECT_THROW(nn::Calibrator(model, bad), sparq::Error);
  bad = {};
  bad.observer.kind = sparq::ObserverKind::per_channel_minmax;
  EXPECT_THROW(nn::Calibrator(model, bad), sparq::Error);
  nn::Sequential other{nn::Linear(4, 5), nn::ReLU()};
  cal.observe(nn::Tensor({2, 4}, {1, 2, 3, 4, -1, -2, -3, -4}));
  EXPECT_THROW(nn::quantize_static(other, cal), sparq::Error);
  EXPECT_NO_THROW(nn::quantize_static(model, cal));
  EXPECT_EQ(cal.activation_names(), (std::vector<std::string>{"input", "0"}));
  EXPECT_GT(cal.qparams("0").scale, 0.0f);
  EXPECT_EQ(cal.qparams("0").zero_point, 0);  // ReLU fused: range starts at 0
}
