// AdaRound (adaround.hpp): the learned rounding must lower the layers' output
// error on inputs it never saw, keep every weight at floor or ceil of
// w / s, keep the layers' kinds, scales and qparams (so files still load),
// reject bad options and models, and give the same weights for a seed.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <tuple>
#include <utility>

#include "sparq/error.hpp"
#include "sparq/nn/adaround.hpp"
#include "sparq/nn/nn.hpp"
#include "sparq/quant/quantize.hpp"
#include "sparq/threads.hpp"
#include "support/error_of.hpp"
#include "support/nn_random.hpp"

namespace nn = sparq::nn;

namespace {

nn::Tensor uniform(std::vector<int64_t> shape, float lo, float hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  return sparq::test::random_tensor(std::move(shape), rng, lo, hi);
}

// Linear -> ReLU -> Linear: small enough that a few hundred Adam steps take
// milliseconds, wide enough (48 inputs) that rounding errors add up.
nn::Sequential mlp() {
  nn::Sequential m;
  m.add(nn::Linear(48, 24));
  m.add(nn::ReLU{});
  m.add(nn::Linear(24, 8));
  m.init_parameters(11);
  return m;
}

// Conv -> BatchNorm -> ReLU -> MaxPool -> depthwise Conv -> ReLU: a folded
// BatchNorm, a fused ReLU and a grouped convolution (one problem per group).
nn::Sequential cnn() {
  nn::Sequential m;
  m.add(nn::Conv2d(3, 8, 3, {.padding = {1, 1}}));
  m.add(nn::BatchNorm(8));
  m.add(nn::ReLU{});
  m.add(nn::MaxPool2d(2));
  m.add(nn::Conv2d(8, 8, 3, {.padding = {1, 1}, .groups = 8}));
  m.add(nn::ReLU{});
  m.init_parameters(13);
  // Output channel 0 four times larger: the per-tensor weight step is
  // coarse for the other channels, so weight rounding (what AdaRound
  // chooses) and not the input's u8 rounding dominates the layer's error.
  auto& conv = std::get<nn::Conv2d>(m[0]);
  for (int64_t i = 0; i < conv.patch_size(); ++i) conv.weight.data[i] *= 4.0f;
  auto& bn = std::get<nn::BatchNorm>(m[1]);  // statistics that make folding matter
  std::mt19937_64 rng(12);
  std::uniform_real_distribution<float> u(0.5f, 1.5f);
  for (int64_t c = 0; c < 8; ++c) {
    bn.weight.data[c] = u(rng);
    bn.running_var.data[c] = u(rng);
    bn.running_mean.data[c] = u(rng) - 1.0f;
  }
  return m;
}

nn::QuantizedModel quantize(const nn::Sequential& m, const nn::Tensor& calib,
                            sparq::Granularity g) {
  nn::Calibrator cal(m, {.observer = {.kind = sparq::ObserverKind::minmax}});
  cal.observe(calib);
  return nn::quantize_static(cal, {.weight_granularity = g});
}

// The input to FP32 layer `first` and the FP32 output of layers [first, last).
std::pair<nn::Tensor, nn::Tensor> fp32_io(const nn::Sequential& fp32, std::size_t first,
                                          std::size_t last, const nn::Tensor& x) {
  nn::Tensor in = x;
  for (std::size_t l = 0; l < first; ++l) in = nn::forward(fp32[l], in);
  nn::Tensor ref = in;
  for (std::size_t l = first; l < last; ++l) ref = nn::forward(fp32[l], ref);
  return {in, ref};
}

double mse(const nn::Tensor& a, const nn::Tensor& b) {
  double e = 0;
  for (std::size_t i = 0; i < a.data.size(); ++i) {
    const double d = static_cast<double>(a.data[i]) - b.data[i];
    e += d * d;
  }
  return e / static_cast<double>(a.data.size());
}

// Mean squared error of unit `unit` of q (a QLinear or QConv2d with ReLU)
// against the FP32 layers [first, last), on the FP32 model's input to them:
// the error AdaRound minimises, i.e. the quantized layer's output before its
// own u8 rounding (int8 weights dequantized, input quantized to u8 and back,
// FP32 arithmetic).
double layer_mse(const nn::QuantizedModel& q, std::size_t unit, const nn::Sequential& fp32,
                 std::size_t first, std::size_t last, const nn::Tensor& x) {
  const auto [in, ref] = fp32_io(fp32, first, last, x);
  auto dequantized = [](const nn::QuantizedWeights& w, std::vector<float>& out) {
    for (std::size_t i = 0; i < w.values().size(); ++i)
      out.push_back(w.values()[i] * w.scales()[i / static_cast<std::size_t>(w.k())]);
  };
  auto input = [&](const sparq::QParams& qp) {
    nn::Tensor t = in;
    sparq::Quantizer<uint8_t, sparq::Scheme::asymmetric>(qp).fake_quantize(in.data, t.data);
    return t;
  };
  nn::Tensor y;
  if (const auto* l = std::get_if<nn::QLinear>(&q.units()[unit].op)) {
    EXPECT_EQ(l->activation, nn::Activation::relu);
    nn::Linear lin(l->in_features, l->out_features);
    lin.weight.data.clear();
    dequantized(*l->weights, lin.weight.data);
    lin.bias.data = l->bias;
    y = lin.forward(input(l->input_qparams));
  } else {
    const auto& c = std::get<nn::QConv2d>(q.units()[unit].op);
    EXPECT_EQ(c.activation, nn::Activation::relu);
    nn::Conv2d conv;
    static_cast<nn::Conv2dGeometry&>(conv) = c;
    conv.weight = nn::Tensor({c.out_channels, c.kernel_h, c.kernel_w, c.in_channels / c.groups});
    conv.weight.data.clear();
    for (const auto& w : c.weights) dequantized(*w, conv.weight.data);
    conv.bias = nn::Tensor({c.out_channels}, c.bias);
    y = conv.forward(input(c.input_qparams));
  }
  for (float& v : y.data) v = std::max(v, 0.0f);
  return mse(y, ref);
}

// The same through the INT8 kernels (the unit run alone, its output u8 and back).
double unit_mse(const nn::QuantizedModel& q, std::size_t unit, const nn::Sequential& fp32,
                std::size_t first, std::size_t last, const nn::Tensor& x) {
  const auto [in, ref] = fp32_io(fp32, first, last, x);
  return mse(q.run_unit(unit, in), ref);
}

std::vector<int8_t> all_values(const nn::QuantizedModel& q) {
  std::vector<int8_t> out;
  for (const auto& u : q.units()) {
    if (const auto* l = std::get_if<nn::QLinear>(&u.op)) {
      out.insert(out.end(), l->weights->values().begin(), l->weights->values().end());
    } else if (const auto* c = std::get_if<nn::QConv2d>(&u.op)) {
      for (const auto& w : c->weights)
        out.insert(out.end(), w->values().begin(), w->values().end());
    }
  }
  return out;
}

const nn::AdaRoundOptions kFast{.iterations = 400, .batch_rows = 128};

TEST(AdaRound, LowersTheLinearOutputErrorOnHeldOutInputs) {
  const nn::Sequential m = mlp();
  const nn::Tensor calib = uniform({512, 48}, 0.0f, 1.0f, 1);
  const nn::Tensor held_out = uniform({512, 48}, 0.0f, 1.0f, 2);
  for (auto g : {sparq::Granularity::per_tensor, sparq::Granularity::per_channel}) {
    const nn::QuantizedModel nearest = quantize(m, calib, g);
    std::vector<nn::AdaRoundLayer> report;
    const nn::QuantizedModel learned = nn::adaround(nearest, m, {&calib, 1}, kFast, &report);
    ASSERT_EQ(report.size(), 2u);
    for (const auto& r : report) {
      std::printf("  unit %s: %lld of %lld weights changed, calibration error %.3g -> %.3g\n",
                  r.name.c_str(), static_cast<long long>(r.changed),
                  static_cast<long long>(r.weights), r.nearest_error, r.adaround_error);
      EXPECT_GT(r.changed, 0) << r.name;
      EXPECT_LT(r.adaround_error, r.nearest_error) << r.name;
    }
    const double before = layer_mse(nearest, 0, m, 0, 2, held_out);
    const double after = layer_mse(learned, 0, m, 0, 2, held_out);
    const double kernel_before = unit_mse(nearest, 0, m, 0, 2, held_out);
    const double kernel_after = unit_mse(learned, 0, m, 0, 2, held_out);
    std::printf(
        "AdaRound Linear(48, 24) + ReLU, %s weights, held-out MSE: layer %.3g -> %.3g, "
        "INT8 unit (output u8) %.3g -> %.3g\n",
        g == sparq::Granularity::per_tensor ? "per-tensor" : "per-channel", before, after,
        kernel_before, kernel_after);
    // A clear part of the rounding error must go on rows it never saw, not
    // a float-noise amount.
    EXPECT_LT(after, 0.9 * before);
    // Through the kernels the output's u8 rounding adds the same noise to
    // both: smaller, but still lower.
    EXPECT_LT(kernel_after, kernel_before);
    // End to end on the held-out rows, too.
    const nn::Tensor ref = m.forward(held_out);
    EXPECT_GT(nn::sqnr_db(ref.data, learned.forward(held_out).data),
              nn::sqnr_db(ref.data, nearest.forward(held_out).data));
  }
}

TEST(AdaRound, LowersTheConvOutputErrorOnHeldOutInputs) {
  const nn::Sequential m = cnn();
  const nn::Tensor calib = uniform({48, 8, 8, 3}, -1.0f, 1.0f, 3);
  const nn::Tensor held_out = uniform({48, 8, 8, 3}, -1.0f, 1.0f, 4);
  const nn::QuantizedModel nearest = quantize(m, calib, sparq::Granularity::per_tensor);
  std::vector<nn::AdaRoundLayer> report;
  const nn::QuantizedModel learned = nn::adaround(nearest, m, {&calib, 1}, kFast, &report);
  ASSERT_EQ(report.size(), 2u);  // the conv and the depthwise conv
  EXPECT_EQ(report[0].name, "0");
  EXPECT_EQ(report[1].name, "4");
  for (const auto& r : report) {
    std::printf("  unit %s: %lld of %lld weights changed, calibration error %.3g -> %.3g\n",
                r.name.c_str(), static_cast<long long>(r.changed),
                static_cast<long long>(r.weights), r.nearest_error, r.adaround_error);
    // Never worse on the calibration rows (a layer that gains nothing keeps
    // the nearest rounding).
    EXPECT_LE(r.adaround_error, r.nearest_error) << r.name;
  }
  EXPECT_LT(report[1].adaround_error, report[1].nearest_error);
  // The depthwise conv (one 3x3 problem per channel) on held-out images.
  // The first conv (27 inputs per output) gains little here: its error is
  // mostly the input's u8 rounding, which no weight rounding removes.
  for (const auto& [unit, first, last] : {std::tuple{2u, 4u, 6u}}) {
    const double before = layer_mse(nearest, unit, m, first, last, held_out);
    const double after = layer_mse(learned, unit, m, first, last, held_out);
    std::printf("AdaRound CNN unit %u, per-tensor: held-out layer MSE %.3g -> %.3g\n", unit, before,
                after);
    EXPECT_LT(after, 0.9 * before) << unit;  // as for the Linear layer
  }
}

TEST(AdaRound, EveryWeightIsFloorOrCeilAndTheLayersKeepTheirForm) {
  const nn::Sequential m = cnn();
  const nn::Tensor calib = uniform({16, 8, 8, 3}, -1.0f, 1.0f, 5);
  for (auto g : {sparq::Granularity::per_tensor, sparq::Granularity::per_channel}) {
    const nn::QuantizedModel nearest = quantize(m, calib, g);
    const nn::QuantizedModel learned =
        nn::adaround(nearest, m, {&calib, 1}, {.iterations = 100, .batch_rows = 64});
    nn::Sequential folded = m;
    nn::fold_batchnorm(folded);  // layers 0 (conv) and 3 (depthwise conv)
    ASSERT_EQ(learned.units().size(), nearest.units().size());
    int64_t checked = 0, moved = 0;
    for (std::size_t u = 0; u < learned.units().size(); ++u) {
      const auto* a = std::get_if<nn::QConv2d>(&learned.units()[u].op);
      const auto* b = std::get_if<nn::QConv2d>(&nearest.units()[u].op);
      ASSERT_EQ(a == nullptr, b == nullptr) << u;
      if (!a) continue;
      EXPECT_EQ(a->input_qparams, b->input_qparams);
      EXPECT_EQ(a->output_qparams, b->output_qparams);
      EXPECT_EQ(a->bias, b->bias);
      const nn::Conv2d& fp = std::get<nn::Conv2d>(folded[u == 0 ? 0 : 3]);
      ASSERT_EQ(a->weights.size(), b->weights.size());
      const int64_t og = a->out_channels / a->groups, patch = a->patch_size();
      for (std::size_t grp = 0; grp < a->weights.size(); ++grp) {
        const auto& wa = *a->weights[grp];
        EXPECT_EQ(wa.kind(), "dense");
        EXPECT_EQ(wa.per_channel(), b->weights[grp]->per_channel());
        ASSERT_TRUE(
            std::equal(wa.scales().begin(), wa.scales().end(), b->weights[grp]->scales().begin()));
        for (std::size_t i = 0; i < wa.values().size(); ++i) {
          const std::size_t row = i / static_cast<std::size_t>(patch);
          const float w = fp.weight.data[grp * static_cast<std::size_t>(og * patch) + i];
          const float t = w * (1.0f / wa.scales()[row]);  // as the quantizer computes w / s
          const int q = wa.values()[i];
          EXPECT_TRUE(q == std::max(-128.0f, std::floor(t)) || q == std::min(127.0f, std::ceil(t)))
              << "unit " << u << " weight " << i << ": " << q << " for " << t;
          moved += q != b->weights[grp]->values()[i];
          ++checked;
        }
      }
    }
    EXPECT_EQ(checked, 8 * 27 + 8 * 9);
    EXPECT_GT(moved, 0);
  }
}

TEST(AdaRound, ResultSavesAndLoadsWithTheSamePredictions) {
  const nn::Sequential m = mlp();
  const nn::Tensor calib = uniform({128, 48}, 0.0f, 1.0f, 6);
  const nn::QuantizedModel learned = nn::adaround(
      quantize(m, calib, sparq::Granularity::per_tensor), m, {&calib, 1}, {.iterations = 50});
  const auto file =
      std::filesystem::temp_directory_path() /
      ("sparq_adaround_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
       ".safetensors");
  nn::save(learned, file);
  const nn::QuantizedModel loaded = nn::load_quantized(file);
  std::filesystem::remove(file);
  EXPECT_EQ(loaded.forward(calib), learned.forward(calib));
  EXPECT_EQ(all_values(loaded), all_values(learned));
}

TEST(AdaRound, IsDeterministicForASeedAndAnyThreadCount) {
  const nn::Sequential m = cnn();
  const nn::Tensor calib = uniform({16, 8, 8, 3}, -1.0f, 1.0f, 7);
  const nn::QuantizedModel q = quantize(m, calib, sparq::Granularity::per_tensor);
  const nn::AdaRoundOptions o{.iterations = 100, .batch_rows = 64, .seed = 5};
  const int threads = sparq::num_threads();
  sparq::set_num_threads(1);
  const std::vector<int8_t> one = all_values(nn::adaround(q, m, {&calib, 1}, o));
  sparq::set_num_threads(2);
  const std::vector<int8_t> two = all_values(nn::adaround(q, m, {&calib, 1}, o));
  sparq::set_num_threads(threads);
  const std::vector<int8_t> again = all_values(nn::adaround(q, m, {&calib, 1}, o));
  EXPECT_EQ(one, two);
  EXPECT_EQ(one, again);
  EXPECT_NE(one, all_values(q));
}

TEST(AdaRound, RejectsBadOptionsNamingTheField) {
  struct Case {
    nn::AdaRoundOptions options;
    const char* field;
  };
  const Case cases[] = {
      {{.iterations = 0}, "iterations (0)"},
      {{.batch_rows = -1}, "batch_rows (-1)"},
      {{.calibration_rows = 0}, "calibration_rows (0)"},
      {{.lambda = -0.5}, "lambda (-0.5)"},
      {{.lambda = NAN}, "lambda (nan)"},
      {{.beta_start = 1.5, .beta_end = 2}, "beta_start (1.5)"},
      {{.beta_end = 0.5}, "beta_end (0.5)"},
      {{.warm_start = 1}, "warm_start (1)"},
      {{.learning_rate = 0}, "learning_rate (0)"},
      {{.learning_rate = INFINITY}, "learning_rate (inf)"},
  };
  const nn::Sequential m = mlp();
  const nn::Tensor calib = uniform({16, 48}, 0.0f, 1.0f, 8);
  const nn::QuantizedModel q = quantize(m, calib, sparq::Granularity::per_tensor);
  for (const Case& c : cases) {
    EXPECT_ERROR(nn::validate(c.options), c.field);
    EXPECT_ERROR(nn::adaround(q, m, {&calib, 1}, c.options), c.field);
  }
  EXPECT_NO_THROW(nn::validate({}));
}

TEST(AdaRound, RejectsModelsItCannotRound) {
  const nn::Sequential m = mlp();
  const nn::Tensor calib = uniform({16, 48}, 0.0f, 1.0f, 9);
  const nn::QuantizedModel q = quantize(m, calib, sparq::Granularity::per_tensor);
  // No calibration data.
  EXPECT_ERROR(nn::adaround(q, m, {}), "no batch");
  // Dynamic layers have no calibrated input qparams.
  EXPECT_ERROR(nn::adaround(nn::quantize_dynamic(m), m, {&calib, 1}), "dynamic");
  // Another FP32 model (same shapes, other weights): not floor/ceil of its weights.
  nn::Sequential other = m;
  other.init_parameters(99);
  EXPECT_ERROR(nn::adaround(q, other, {&calib, 1}), "not quantized from");
  // Another architecture.
  nn::Sequential wider;
  wider.add(nn::Linear(48, 32));
  wider.add(nn::ReLU{});
  wider.add(nn::Linear(32, 8));
  EXPECT_ERROR(nn::adaround(q, wider, {&calib, 1}), "FP32 layer");
  nn::Sequential shorter;
  shorter.add(nn::Linear(48, 24));
  EXPECT_ERROR(nn::adaround(q, shorter, {&calib, 1}), "unit name '2'");
}

}  // namespace
