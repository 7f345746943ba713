// Bias correction and cross-layer equalization, each on a case built to need
// it: the error against FP32 must drop, and equalization must leave the FP32
// function unchanged.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "sparq/nn/nn.hpp"

namespace nn = sparq::nn;

namespace {

nn::Tensor uniform(std::vector<int64_t> shape, float lo, float hi, uint64_t seed) {
  nn::Tensor t(std::move(shape));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  for (float& v : t.data) v = u(rng);
  return t;
}

nn::Calibrator calibrated(const nn::Sequential& m, const nn::Tensor& x) {
  nn::Calibrator cal(m, {.observer = {.kind = sparq::ObserverKind::minmax}});
  cal.observe(x);
  return cal;
}

TEST(BiasCorrection, RemovesTheMeanShiftOfRoundedWeights) {
  // Per-tensor weights whose scale is set by one large weight (row 0): the
  // other rows hold 0.3 of a step, which rounds to 0 and shifts each of
  // their outputs by -0.3 * step * sum(x) ~ -0.3 * 0.078 * 64 * 0.5 on
  // positive inputs. Bias correction measures and removes that shift.
  nn::Linear l(64, 8);
  const float step = 10.0f / 127.5f;
  for (float& w : l.weight.data) w = 0.3f * step;
  l.weight.data[0] = 10.0f;
  for (float& b : l.bias.data) b = 0.0f;
  nn::Sequential m;
  m.add(l);
  const nn::Tensor calib = uniform({256, 64}, 0.0f, 1.0f, 1);
  const nn::Tensor test = uniform({256, 64}, 0.0f, 1.0f, 2);
  const nn::Calibrator cal = calibrated(m, calib);
  const nn::StaticConfig plain{.weight_granularity = sparq::Granularity::per_tensor};
  nn::StaticConfig corrected = plain;
  corrected.bias_correction = true;
  const nn::Tensor ref = m.forward(test);
  const double before = nn::sqnr_db(ref.data, nn::quantize_static(cal, plain).forward(test).data);
  const double after =
      nn::sqnr_db(ref.data, nn::quantize_static(cal, corrected).forward(test).data);
  std::printf("bias correction, per-tensor Linear: SQNR %.2f dB -> %.2f dB\n", before, after);
  EXPECT_GT(after, before + 6.0);
  // Mean error of an affected output: from ~-1 to ~0.
  auto mean_error = [&](const nn::QuantizedModel& q) {
    const nn::Tensor y = q.forward(test);
    double e = 0;
    for (int64_t r = 0; r < 256; ++r) e += y.data[r * 8 + 3] - ref.data[r * 8 + 3];
    return e / 256;
  };
  EXPECT_LT(mean_error(nn::quantize_static(cal, plain)), -0.5);
  EXPECT_NEAR(mean_error(nn::quantize_static(cal, corrected)), 0.0, 0.1);
}

TEST(BiasCorrection, NeedsKeptSamples) {
  nn::Sequential m;
  m.add(nn::Linear(4, 2));
  nn::Calibrator cal(m, {.keep_samples = 0});
  cal.observe(uniform({8, 4}, -1, 1, 3));
  EXPECT_THROW(nn::quantize_static(cal, {.bias_correction = true}), sparq::Error);
}

// conv -> ReLU -> conv with output channels of very different ranges: per
// tensor, the small channels of the first conv quantize to ~0.
nn::Sequential unbalanced_pair(int64_t groups2) {
  std::mt19937_64 rng(4);
  std::normal_distribution<float> g(0.0f, 1.0f);
  nn::Conv2d a(3, 8, 3, {.padding = {1, 1}});
  for (std::size_t i = 0; i < a.weight.data.size(); ++i) {
    const std::size_t o = i / static_cast<std::size_t>(a.patch_size());
    a.weight.data[i] = g(rng) * std::pow(4.0f, static_cast<float>(o) - 4.0f);  // 4^-4 .. 4^3
  }
  for (std::size_t o = 0; o < 8; ++o) a.bias.data[o] = 0.1f * std::pow(4.0f, o - 4.0f);
  nn::Conv2d b(8, 8, 3, {.padding = {1, 1}, .groups = groups2});
  for (std::size_t i = 0; i < b.weight.data.size(); ++i) {
    // Input channel c of the second conv undoes the first's scale, so every
    // path matters equally to the output.
    const std::size_t per = static_cast<std::size_t>(b.patch_size());
    const std::size_t local = i % static_cast<std::size_t>(8 / groups2);
    const std::size_t o = i / per;
    const std::size_t c = (o / static_cast<std::size_t>(8 / groups2)) * (8 / groups2) + local;
    b.weight.data[i] = g(rng) * std::pow(4.0f, 4.0f - static_cast<float>(c));
  }
  nn::Sequential m;
  m.add(a);
  m.add(nn::ReLU{});
  m.add(nn::MaxPool2d(2));
  m.add(b);
  return m;
}

TEST(CrossLayerEqualization, KeepsTheFunctionAndRescuesPerTensorWeights) {
  for (int64_t groups2 : {1, 8}) {  // dense and depthwise second conv
    const nn::Sequential m = unbalanced_pair(groups2);
    int pairs = 0;
    const nn::Sequential eq = nn::equalize_cross_layer(m, &pairs);
    EXPECT_EQ(pairs, 1);
    const nn::Tensor x = uniform({16, 8, 8, 3}, -1.0f, 1.0f, 5);
    const nn::Tensor ref = m.forward(x);
    // The same function: float rounding of a rescaled sum only.
    EXPECT_GT(nn::sqnr_db(ref.data, eq.forward(x).data), 100.0);
    const nn::StaticConfig per_tensor{.weight_granularity = sparq::Granularity::per_tensor};
    const nn::Tensor calib = uniform({64, 8, 8, 3}, -1.0f, 1.0f, 6);
    const double before = nn::sqnr_db(
        ref.data, nn::quantize_static(calibrated(m, calib), per_tensor).forward(x).data);
    const double after = nn::sqnr_db(
        ref.data, nn::quantize_static(calibrated(eq, calib), per_tensor).forward(x).data);
    std::printf("CLE, conv -> ReLU -> pool -> conv (groups %lld), per-tensor: %.2f -> %.2f dB\n",
                static_cast<long long>(groups2), before, after);
    EXPECT_GT(after, before + 6.0) << groups2;
  }
}

TEST(CrossLayerEqualization, LeavesUnpairedLayersAlone) {
  nn::Sequential m;
  m.add(nn::Linear(4, 4));
  m.add(nn::ReLU6{});  // not positively homogeneous: no pair
  m.add(nn::Linear(4, 2));
  m.init_parameters(7);
  int pairs = -1;
  const nn::Sequential eq = nn::equalize_cross_layer(m, &pairs);
  EXPECT_EQ(pairs, 0);
  EXPECT_EQ(eq.state_dict(), m.state_dict());
}

}  // namespace
