// The quantize / dequantize / fake_quantize front ends (templated and
// run-time spec) on every ISA: per-tensor and per-channel over ranks 1-4 and
// every axis, against the scalar definition written out here and against
// FP64 math, plus special values and every documented error.
#include "sparq/quant/quantize.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "support/isa_param.hpp"

namespace sparq {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// The definition from quantize.hpp, written independently of the library.
int32_t ref_q(float x, float scale, int32_t zp, int32_t qmin, int32_t qmax) {
  const float t = x * (1.0f / scale);
  if (std::isnan(t)) return std::clamp(zp, qmin, qmax);
  if (t >= 1e10f) return qmax;
  if (t <= -1e10f) return qmin;
  return std::clamp(static_cast<int32_t>(std::nearbyint(t)) + zp, qmin, qmax);
}

std::vector<float> random_values(std::size_t n, float amp, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-amp, amp);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  for (std::size_t i = 0; i < n; i += 53) v[i] = (i % 2) ? kNaN : (i % 3 ? kInf : -kInf);
  return v;
}

class QuantizeApiTest : public testing::IsaTest {};

TEST_P(QuantizeApiTest, PerTensorSymmetricInt8) {
  const Quantizer<int8_t> q(QParams{0.05f, 0});
  const auto x = random_values(1000, 8.0f, 1);
  std::vector<int8_t> out(x.size());
  q.quantize(x, out);
  for (std::size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(out[i], ref_q(x[i], 0.05f, 0, -128, 127)) << x[i];
    ASSERT_EQ(out[i], q.quantize(x[i]));
    if (std::isfinite(x[i]) && std::fabs(x[i]) < 6.3f) {
      // Within half a step of x / scale in FP64 (plus the float rounding of
      // x * (1/scale): a few ulp of values below 128, far below 1e-4).
      ASSERT_LE(std::fabs(out[i] - static_cast<double>(x[i]) / 0.05), 0.5 + 1e-4) << x[i];
    }
  }
  std::vector<float> back(x.size());
  q.dequantize(out, back);
  for (std::size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(back[i], static_cast<float>(out[i]) * 0.05f);
    ASSERT_EQ(back[i], q.dequantize(out[i]));
  }
  EXPECT_THROW(Quantizer<int8_t>(QParams{0.05f, 3}), Error);  // symmetric s8: zp must be 0
}

TEST_P(QuantizeApiTest, PerTensorAsymmetricUint8AndSpecialValues) {
  const Quantizer<uint8_t, Scheme::asymmetric> q(QParams{0.25f, 100});
  const std::vector<float> x = {kNaN, kInf, -kInf, 1e30f, -1e30f, 0.125f, 0.375f, -0.125f, 0.0f};
  std::vector<uint8_t> out(x.size());
  q.quantize(x, out);
  // 0.125/0.25 = 0.5 -> 0 (even); 0.375/0.25 = 1.5 -> 2; -0.5 -> -0.
  EXPECT_EQ(out, (std::vector<uint8_t>{100, 255, 0, 255, 0, 100, 102, 100, 100}));
}

TEST_P(QuantizeApiTest, FakeQuantizeAndSteMask) {
  // PyTorch fake_quantize_per_tensor_affine(x, 0.1, 0, -128, 127): values
  // whose rounded q leaves [-128, 127] are clamped and get gradient 0.
  const Quantizer<int8_t> q(QParams{0.1f, 0});
  const std::vector<float> x = {0.0f, 12.7f, 12.76f, -12.8f, -12.86f, 0.05f, kNaN, kInf, -kInf};
  std::vector<float> y(x.size());
  std::vector<uint8_t> mask(x.size());
  q.fake_quantize(x, y, mask);
  EXPECT_EQ(mask, (std::vector<uint8_t>{1, 1, 0, 1, 0, 1, 0, 0, 0}));
  std::vector<int8_t> qv(x.size());
  std::vector<float> deq(x.size());
  q.quantize(x, qv);
  q.dequantize(qv, deq);
  EXPECT_EQ(0, std::memcmp(y.data(), deq.data(), y.size() * sizeof(float)));
  EXPECT_EQ(y[6], 0.0f);         // NaN -> zero point -> 0.0
  EXPECT_EQ(y[7], 127 * 0.1f);   // +Inf -> qmax
  EXPECT_EQ(y[8], -128 * 0.1f);  // -Inf -> qmin
  std::vector<uint8_t> short_mask(3);
  EXPECT_THROW(q.fake_quantize(x, y, short_mask), Error);
}

// Naive per-channel reference: channel of element i = (i / inner) % C.
struct Case {
  std::vector<int64_t> shape;
  int axis;
};

TEST_P(QuantizeApiTest, PerChannelEveryRankAndAxis) {
  const std::vector<Case> cases = {
      {{7}, 0},
      {{7}, -1},
      {{5, 3}, 0},
      {{5, 3}, 1},
      {{3, 70}, -1},
      {{70, 3}, 1},
      {{4, 5, 6}, 1},
      {{4, 5, 6}, -3},
      {{2, 3, 4, 5}, 2},
      {{2, 3, 40, 5}, 3},
      {{3, 2, 17, 33}, 1},
      {{1, 1, 1, 1}, -2},
      {{16, 9}, 0},
      {{2, 300, 20}, 1},
      // Small inner with a row too long for the front end to expand the
      // parameters (> 65536 elements): the kernels' inner > 1 path.
      {{1, 22000, 3}, 1}};
  std::mt19937 rng(7);
  for (const auto& c : cases) {
    std::size_t n = 1;
    for (auto d : c.shape) n *= static_cast<std::size_t>(d);
    const int a = c.axis < 0 ? c.axis + static_cast<int>(c.shape.size()) : c.axis;
    std::size_t inner = 1;
    for (std::size_t d = a + 1; d < c.shape.size(); ++d)
      inner *= static_cast<std::size_t>(c.shape[d]);
    const auto channels = static_cast<std::size_t>(c.shape[a]);
    ChannelQParams s8, u8;
    s8.axis = u8.axis = c.axis;
    for (std::size_t ch = 0; ch < channels; ++ch) {
      const float scale = 0.01f + static_cast<float>(rng() % 1000) * 1e-3f;
      s8.scales.push_back(scale);
      u8.scales.push_back(scale * 1.5f);
      s8.zero_points.push_back(static_cast<int32_t>(rng() % 256) - 128);
      u8.zero_points.push_back(static_cast<int32_t>(rng() % 256));
    }
    const auto x = random_values(n, 100.0f, static_cast<uint32_t>(n));
    const Quantizer<int8_t, Scheme::asymmetric, Granularity::per_channel> qs(s8);
    const Quantizer<uint8_t, Scheme::asymmetric, Granularity::per_channel> qu(u8, 0, 200);
    std::vector<int8_t> os(n);
    std::vector<uint8_t> ou(n);
    qs.quantize(x, c.shape, os);
    qu.quantize(x, c.shape, ou);
    std::vector<float> ds(n), du(n), fs(n);
    std::vector<uint8_t> mask(n);
    qs.dequantize(os, c.shape, ds);
    qu.dequantize(ou, c.shape, du);
    qs.fake_quantize(x, c.shape, fs, mask);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t ch = (i / inner) % channels;
      const int32_t want_s = ref_q(x[i], s8.scales[ch], s8.zero_points[ch], -128, 127);
      const int32_t want_u = ref_q(x[i], u8.scales[ch], u8.zero_points[ch], 0, 200);
      ASSERT_EQ(os[i], want_s) << "shape rank " << c.shape.size() << " axis " << c.axis << " i "
                               << i;
      ASSERT_EQ(ou[i], want_u) << "shape rank " << c.shape.size() << " axis " << c.axis << " i "
                               << i;
      ASSERT_EQ(ds[i], static_cast<float>(want_s - s8.zero_points[ch]) * s8.scales[ch]);
      ASSERT_EQ(du[i], static_cast<float>(want_u - u8.zero_points[ch]) * u8.scales[ch]);
      ASSERT_EQ(fs[i], ds[i]);
      const float r =
          std::nearbyint(x[i] * (1.0f / s8.scales[ch])) + static_cast<float>(s8.zero_points[ch]);
      ASSERT_EQ(mask[i], (r >= -128.0f && r <= 127.0f) ? 1 : 0);
    }
  }
}

TEST_P(QuantizeApiTest, RuntimeSpecFrontEnd) {
  const std::vector<int64_t> shape = {4, 8};
  const auto x = random_values(32, 3.0f, 11);
  QuantSpec spec;
  spec.dtype = DType::u8;
  spec.scheme = Scheme::asymmetric;
  spec.reduce_range = true;
  const QParams qp = compute_qparams(-3.0f, 3.0f, spec);
  std::vector<uint8_t> out(32);
  quantize<uint8_t>(x, shape, spec, qp, out);
  for (std::size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(out[i], ref_q(x[i], qp.scale, qp.zero_point, 0, 127));
  }
  std::vector<float> back(32), fq(32);
  dequantize<uint8_t>(out, shape, spec, qp, back);
  fake_quantize(x, shape, spec, qp, fq);
  EXPECT_EQ(back, fq);
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (std::isfinite(x[i])) {
      ASSERT_LE(std::fabs(back[i] - x[i]), qp.scale * 0.5f * 1.0001f);  // half a step
    }
  }

  // Per channel along the last axis, given as -1 in the spec and 1 in the qparams.
  QuantSpec cs;
  cs.granularity = Granularity::per_channel;
  cs.axis = -1;
  std::vector<float> mins(8, -2.0f), maxs(8);
  for (int c = 0; c < 8; ++c) maxs[c] = 0.5f + static_cast<float>(c);
  ChannelQParams cq = compute_qparams(mins, maxs, cs);
  cq.axis = 1;
  std::vector<int8_t> o8(32);
  quantize<int8_t>(x, shape, cs, cq, o8);
  for (std::size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(o8[i], ref_q(x[i], cq.scales[i % 8], 0, -128, 127));
  }
  std::vector<float> d8(32), f8(32);
  dequantize<int8_t>(o8, shape, cs, cq, d8);
  fake_quantize(x, shape, cs, cq, f8);
  EXPECT_EQ(d8, f8);
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(QuantizeApiTest);

// Every documented error, each with the value in its message.
template <class F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(QuantizeErrors, Messages) {
  std::vector<float> x(6, 1.0f), y(6);
  std::vector<int8_t> q(6), q5(5);
  const std::vector<int64_t> shape = {2, 3};
  const Quantizer<int8_t> ok(QParams{0.1f, 0});
  expect_error([&] { ok.quantize(std::span<const float>(), std::span<int8_t>()); }, "empty");
  expect_error([&] { ok.quantize(x, q5); }, "5");
  expect_error([&] { Quantizer<int8_t>(QParams{0.0f, 0}); }, "scale (0)");
  expect_error([&] { Quantizer<int8_t>(QParams{-1.0f, 0}); }, "scale (-1)");
  expect_error([&] { Quantizer<int8_t>(QParams{kNaN, 0}); }, "scale (nan)");
  expect_error([&] { Quantizer<int8_t>(QParams{kInf, 0}); }, "scale (inf)");
  expect_error([&] { Quantizer<int8_t>(QParams{1e-45f, 0}); }, "reciprocal");
  expect_error(
      [&] {
        Quantizer<uint8_t, Scheme::asymmetric>(QParams{1.0f, 256});
      },
      "zero_point (256)");
  expect_error(
      [&] {
        Quantizer<int8_t, Scheme::asymmetric>(QParams{1.0f, -129});
      },
      "zero_point (-129)");
  expect_error([&] { Quantizer<int8_t>(QParams{1.0f, 0}, 5, 5); }, "[5, 5]");

  ChannelQParams cq{{0.1f, 0.2f, 0.3f}, {0, 0, 0}, 1};
  const Quantizer<int8_t, Scheme::symmetric, Granularity::per_channel> pc(cq);
  pc.quantize(x, shape, q);  // fine
  expect_error([&] { pc.quantize(x, std::vector<int64_t>{3, 2}, q); }, "extent 2");
  expect_error([&] { pc.quantize(x, std::vector<int64_t>{6}, q); }, "axis 1");
  expect_error([&] { pc.quantize(x, std::vector<int64_t>{2, 2}, q); }, "4 elements");
  expect_error([&] { pc.quantize(x, std::vector<int64_t>{2, 0, 3}, q); }, "shape[1] is 0");
  expect_error(
      [&] {
        Quantizer<int8_t, Scheme::symmetric, Granularity::per_channel>({{0.1f}, {1}, 0});
      },
      "zero_points[0] (1)");
  expect_error(
      [&] {
        Quantizer<int8_t, Scheme::asymmetric, Granularity::per_channel>({{0.1f, -2.0f}, {1, 1}, 0});
      },
      "scale[1] (-2)");
  expect_error(
      [&] {
        Quantizer<int8_t, Scheme::asymmetric, Granularity::per_channel>({{0.1f}, {1, 1}, 0});
      },
      "1 scales but 2 zero_points");

  QuantSpec spec;  // s8 per tensor
  expect_error([&] { quantize<uint8_t>(x, shape, spec, QParams{}, std::span<uint8_t>()); },
               "spec.dtype is s8");
  expect_error([&] { quantize<int8_t>(x, shape, spec, cq, std::span<int8_t>(q)); }, "granularity");
  QuantSpec cs = spec;
  cs.granularity = Granularity::per_channel;
  cs.axis = 0;
  expect_error([&] { quantize<int8_t>(x, shape, cs, cq, std::span<int8_t>(q)); }, "spec.axis (0)");
  cs.axis = 2;
  expect_error([&] { quantize<int8_t>(x, shape, cs, cq, std::span<int8_t>(q)); },
               "axis 2 is out of range");
  cs.axis = -3;
  expect_error([&] { quantize<int8_t>(x, shape, cs, cq, std::span<int8_t>(q)); },
               "axis -3 is out of range");
  expect_error([&] { fake_quantize(x, std::vector<int64_t>{7}, spec, QParams{}, y); },
               "7 elements");
}

// A rank-0 tensor (empty shape) is one element.
TEST(QuantizeShapes, ScalarShape) {
  const std::vector<float> x = {0.3f};
  std::vector<int8_t> q(1);
  quantize<int8_t>(x, Shape{}, QuantSpec{}, QParams{0.1f, 0}, q);
  EXPECT_EQ(q[0], 3);
}

}  // namespace
}  // namespace sparq
