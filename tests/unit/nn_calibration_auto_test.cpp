// RangeMethod::automatic in nn::Calibrator (the default of static
// quantization): it picks a clipping range where rare outliers dominate the
// min/max, does not clip a ReLU layer to half its range, chooses only on
// held-out calibration rows (never observed), and reports its choice; plus
// the argmax / accuracy helpers.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "sparq/nn/nn.hpp"
#include "sparq/observe/histogram.hpp"

namespace nn = sparq::nn;
using sparq::RangeMethod;

namespace {

nn::Tensor normal(std::vector<int64_t> shape, uint64_t seed) {
  nn::Tensor t(std::move(shape));
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (float& v : t.data) v = g(rng);
  return t;
}

nn::Linear random_linear(int64_t in, int64_t out, uint64_t seed) {
  nn::Linear l(in, out);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f / std::sqrt(static_cast<float>(in)));
  for (float& v : l.weight.data) v = g(rng);
  for (float& v : l.bias.data) v = 0.1f * g(rng);
  return l;
}

// Upper end of the real range a u8 asymmetric qparams represents.
float upper(const sparq::QParams& qp) { return (255.0f - qp.zero_point) * qp.scale; }

TEST(AutomaticRange, ReluLayerKeepsItsRange) {
  nn::Sequential m;
  m.add(random_linear(64, 64, 1));
  m.add(nn::ReLU{});
  m.add(random_linear(64, 10, 2));
  nn::Calibrator cal(m);  // the default: histogram + RangeMethod::automatic
  for (int b = 0; b < 8; ++b) cal.observe(normal({512, 64}, 10 + b));
  EXPECT_EQ(cal.held_out_rows(), 256);
  const nn::RangeChoice c = cal.range_choice("0");
  EXPECT_TRUE(c.held_out);
  ASSERT_EQ(c.candidates.size(), 4u);
  EXPECT_TRUE(std::isfinite(c.sqnr_db));
  for (const auto& [method, db] : c.candidates) EXPECT_LE(db, c.sqnr_db);
  const auto& h = static_cast<const sparq::HistogramObserver&>(cal.observer("0"));
  const float hi = upper(cal.qparams("0"));
  const float mse_hi = h.range(RangeMethod::mse).second;
  // Issue 17: entropy clipped ReLU outputs to about half the MSE range.
  EXPECT_GT(hi, 0.8f * mse_hi) << sparq::range_method_name(c.method);
  EXPECT_GT(hi, 0.5f * h.range(RangeMethod::minmax).second);
}

TEST(AutomaticRange, RareOutliersGetAClippingMethod) {
  // Identity layer: its output is its input. Three huge values among 262k
  // observed ones set min/max: keeping them leaves the bulk ~2 levels.
  nn::Linear id(64, 64);
  for (int64_t i = 0; i < 64; ++i) id.weight.data[i * 64 + i] = 1.0f;
  nn::Sequential m;
  m.add(id);
  nn::Calibrator cal(m);
  for (int b = 0; b < 8; ++b) {
    nn::Tensor x = normal({512, 64}, 30 + b);
    if (b == 2) {
      // Rows 0, 1, 2 of this batch (global 1024..1026) are observed rows.
      x.data[0 * 64 + 5] = 200.0f;
      x.data[1 * 64 + 9] = -150.0f;
      x.data[2 * 64 + 1] = 180.0f;
    }
    cal.observe(x);
  }
  for (const char* name : {"input", "0"}) {
    const nn::RangeChoice c = cal.range_choice(name);
    EXPECT_NE(c.method, RangeMethod::minmax) << name;
    const float hi = upper(cal.qparams(name));
    EXPECT_LT(hi, 20.0f) << name << " " << sparq::range_method_name(c.method);
    EXPECT_GT(hi, 3.0f) << name;  // the bulk is kept
    // And it is worth it on the held-out rows: > 10 dB over minmax.
    EXPECT_GT(c.sqnr_db, c.candidates[0].second + 10.0) << name;
  }
}

TEST(AutomaticRange, HeldOutRowsAreNeverObservedAndTheReportSaysWhatWasChosen) {
  nn::Sequential m;
  m.add(random_linear(16, 8, 3));
  m.add(nn::ReLU{});
  m.add(random_linear(8, 4, 4));
  nn::CalibrationConfig cfg;
  cfg.holdout_samples = 10;
  nn::Calibrator cal(m, cfg);
  cal.observe(normal({30, 16}, 5));  // rows 3, 7, ..., 27 held out: 7
  cal.observe(normal({30, 16}, 6));  // global rows 31, 35, 39 held out: 3 (cap 10)
  EXPECT_EQ(cal.held_out_rows(), 10);
  EXPECT_EQ(cal.observer("input").stats().observed, (60 - 10) * 16);
  EXPECT_EQ(cal.observer("0").stats().observed, (60 - 10) * 8);
  const nn::QuantizedModel q = nn::quantize_static(cal);
  const nn::LayerReport r = nn::layer_report(cal, q);
  ASSERT_EQ(r.layers.size(), 2u);
  for (const nn::LayerError& e : r.layers) {
    EXPECT_EQ(e.range_method.rfind("auto:", 0), 0u) << e.range_method;
    EXPECT_TRUE(std::isfinite(e.range_sqnr_db));
  }
  const std::string table = r.table();
  EXPECT_NE(table.find("auto:"), std::string::npos) << table;
  EXPECT_NE(table.find("held-out dB"), std::string::npos) << table;
}

TEST(AutomaticRange, FixedMethodsHoldNothingOut) {
  nn::Sequential m;
  m.add(random_linear(16, 8, 7));
  nn::CalibrationConfig cfg;
  cfg.observer.method = RangeMethod::mse;
  nn::Calibrator cal(m, cfg);
  cal.observe(normal({40, 16}, 8));
  EXPECT_EQ(cal.held_out_rows(), 0);
  EXPECT_EQ(cal.observer("input").stats().observed, 40 * 16);
  const nn::RangeChoice c = cal.range_choice("0");
  EXPECT_EQ(c.method, RangeMethod::mse);
  EXPECT_TRUE(std::isnan(c.sqnr_db));
  EXPECT_TRUE(c.candidates.empty());
  EXPECT_EQ(cal.qparams("0"), cal.observer("0").qparams());
}

TEST(AutomaticRange, WithoutHeldOutRowsTheObserverChoosesOnItsHistogram) {
  nn::Sequential m;
  m.add(random_linear(16, 8, 9));
  nn::Calibrator cal(m);
  cal.observe(normal({3, 16}, 10));  // rows 0..2: nothing held out
  EXPECT_EQ(cal.held_out_rows(), 0);
  const nn::RangeChoice c = cal.range_choice("0");
  EXPECT_FALSE(c.held_out);
  const auto& h = static_cast<const sparq::HistogramObserver&>(cal.observer("0"));
  EXPECT_EQ(c.method, h.automatic_choice().method);
  EXPECT_EQ(cal.qparams("0"), h.qparams());  // the observer alone resolves automatic the same way
  EXPECT_THROW(nn::Calibrator(m, {.holdout_samples = -1}), sparq::Error);
}

TEST(PyTorchPresets, ReproduceGetDefaultQconfigObserverByObserver) {
  // torch 1.13: get_default_qconfig('x86') = QConfig(activation=HistogramObserver
  // .with_args(reduce_range=True), weight=PerChannelMinMaxObserver.with_args(
  // dtype=qint8, qscheme=per_channel_symmetric)); 'onednn' the same with
  // reduce_range=False; 'qnnpack' reduce_range=False and MinMaxObserver(qint8,
  // per_tensor_symmetric) weights. HistogramObserver: quint8, affine, 2048 bins.
  struct Case {
    nn::QConfig q;
    bool reduce_range;
    sparq::Granularity weights;
  } cases[] = {
      {nn::QConfig::pytorch_x86(), true, sparq::Granularity::per_channel},
      {nn::QConfig::pytorch_fbgemm(), true, sparq::Granularity::per_channel},
      {nn::QConfig::pytorch_onednn(), false, sparq::Granularity::per_channel},
      {nn::QConfig::pytorch_qnnpack(), false, sparq::Granularity::per_tensor},
  };
  for (const Case& c : cases) {
    const sparq::ObserverConfig& o = c.q.calibration.observer;
    EXPECT_EQ(o.kind, sparq::ObserverKind::histogram);
    EXPECT_EQ(o.method, RangeMethod::mse);
    EXPECT_EQ(o.bins, 2048);
    EXPECT_EQ(o.spec.dtype, sparq::DType::u8);
    EXPECT_EQ(o.spec.scheme, sparq::Scheme::asymmetric);
    EXPECT_EQ(o.spec.reduce_range, c.reduce_range);
    EXPECT_EQ(c.q.quantization.weight_granularity, c.weights);
    EXPECT_FALSE(c.q.quantization.fallback_sqnr_db.has_value());
    // Calibrated qparams follow PyTorch's formula on the chosen range:
    // quint8 [0, 127] with reduce_range, else [0, 255].
    nn::Sequential m;
    m.add(random_linear(8, 4, 11));
    nn::Calibrator cal(m, c.q.calibration);
    nn::Tensor x = normal({256, 8}, 12);
    cal.observe(x);
    EXPECT_EQ(cal.held_out_rows(), 0);
    const auto [lo, hi] = cal.observer("input").range();
    const float levels = c.reduce_range ? 127.0f : 255.0f;
    const sparq::QParams qp = cal.qparams("input");
    EXPECT_EQ(qp.scale, (std::max(hi, 0.0f) - std::min(lo, 0.0f)) / levels);
    EXPECT_GE(qp.zero_point, 0);
    EXPECT_LE(qp.zero_point, static_cast<int32_t>(levels));
    const nn::QuantizedModel q = nn::quantize_static(cal, c.q.quantization);
    EXPECT_GT(nn::sqnr_db(m.forward(x).data, q.forward(x).data), 20.0);
  }
  EXPECT_EQ(nn::QConfig::automatic().calibration.observer.method, RangeMethod::automatic);
}

TEST(Accuracy, ArgmaxAndAccuracy) {
  const nn::Tensor s({4, 3}, {0.1f, 0.7f, 0.2f,     // 1
                              5.0f, -1.0f, 5.0f,    // 0 (first on ties)
                              -3.0f, -2.0f, -1.0f,  // 2
                              0.0f, 0.0f, 0.0f});   // 0
  EXPECT_EQ(nn::argmax(s), (std::vector<int64_t>{1, 0, 2, 0}));
  const std::vector<int64_t> labels = {1, 2, 2, 0};
  EXPECT_DOUBLE_EQ(nn::accuracy(s, labels), 0.75);
  const std::vector<uint8_t> u8 = {1, 0, 2, 0};
  EXPECT_DOUBLE_EQ(nn::accuracy(s, u8), 1.0);
  // Rows of any shape: [2, 2, 2] has 4 scores per row.
  const nn::Tensor r3({2, 2, 2}, {0, 1, 9, 2, 3, 3, 1, 0});
  EXPECT_EQ(nn::argmax(r3), (std::vector<int64_t>{2, 0}));
  EXPECT_EQ(nn::argmax(nn::Tensor({0, 5})).size(), 0u);
}

TEST(Accuracy, BadInputIsAClearError) {
  auto message = [](auto f) {
    try {
      f();
    } catch (const sparq::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const nn::Tensor s({2, 2}, {0, 1, 1, 0});
  const std::vector<int64_t> three = {0, 1, 1};
  EXPECT_NE(message([&] { nn::accuracy(s, three); }).find("3 labels"), std::string::npos);
  const std::vector<int64_t> none;
  EXPECT_NE(message([&] { nn::accuracy(none, none); }).find("no rows"), std::string::npos);
  const nn::Tensor bad({2, 2}, {0, NAN, 1, 0});
  EXPECT_NE(message([&] { nn::argmax(bad); }).find("row 0"), std::string::npos);
  EXPECT_NE(message([&] { nn::argmax(nn::Tensor({2, 0})); }).find("no score"), std::string::npos);
}

}  // namespace
