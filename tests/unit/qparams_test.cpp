// compute_qparams against PyTorch's published formula
// (torch/ao/quantization/observer.py, _ObserverBase._calculate_qparams),
// worked by hand below for each case, plus QuantSpec ranges and errors.
#include "sparq/quant/qparams.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace sparq {
namespace {

QuantSpec spec(DType d, Scheme s) {
  QuantSpec q;
  q.dtype = d;
  q.scheme = s;
  return q;
}

// PyTorch computes in float32; the expected scales below are the float32
// results of the same single division, so they compare exactly.
TEST(ComputeQParams, PyTorchMinMaxAsymmetricUint8) {
  // MinMaxObserver(quint8, per_tensor_affine) on [-1, 3]:
  // scale = 4 / 255; zp = 0 - round(-1 / scale) = -round(-63.75) = 64.
  const QParams qp = compute_qparams(-1.0f, 3.0f, spec(DType::u8, Scheme::asymmetric));
  EXPECT_EQ(qp.scale, 4.0f / 255.0f);
  EXPECT_EQ(qp.zero_point, 64);
}

TEST(ComputeQParams, PyTorchSymmetricInt8AndUint8) {
  // per_tensor_symmetric on [-1, 3]: amax = 3, scale = 3 / (255 / 2).
  const QParams s8 = compute_qparams(-1.0f, 3.0f, spec(DType::s8, Scheme::symmetric));
  EXPECT_EQ(s8.scale, 3.0f / 127.5f);
  EXPECT_EQ(s8.zero_point, 0);
  const QParams u8 = compute_qparams(-1.0f, 3.0f, spec(DType::u8, Scheme::symmetric));
  EXPECT_EQ(u8.scale, 3.0f / 127.5f);
  EXPECT_EQ(u8.zero_point, 128);
  // amax from the negative side.
  EXPECT_EQ(compute_qparams(-5.0f, 1.0f, spec(DType::s8, Scheme::symmetric)).scale, 5.0f / 127.5f);
}

TEST(ComputeQParams, RangeAlwaysContainsZero) {
  // [0.5, 2] becomes [0, 2]: scale 2/255, zp = -128 - round(0) = -128.
  const QParams a = compute_qparams(0.5f, 2.0f, spec(DType::s8, Scheme::asymmetric));
  EXPECT_EQ(a.scale, 2.0f / 255.0f);
  EXPECT_EQ(a.zero_point, -128);
  // [-4, -1] becomes [-4, 0]: zp = 0 - round(-4 / (4/255)) = 255.
  const QParams b = compute_qparams(-4.0f, -1.0f, spec(DType::u8, Scheme::asymmetric));
  EXPECT_EQ(b.scale, 4.0f / 255.0f);
  EXPECT_EQ(b.zero_point, 255);
}

TEST(ComputeQParams, ZeroPointRoundsHalfToEven) {
  // [-2.5, 252.5]: scale = 255 / 255 = 1, -min/scale = 2.5 -> 2 (torch.round
  // is half-to-even; half-away would give 3).
  EXPECT_EQ(compute_qparams(-2.5f, 252.5f, spec(DType::u8, Scheme::asymmetric)).zero_point, 2);
  // [-3.5, 251.5]: 3.5 -> 4.
  EXPECT_EQ(compute_qparams(-3.5f, 251.5f, spec(DType::u8, Scheme::asymmetric)).zero_point, 4);
}

TEST(ComputeQParams, ReduceRange) {
  // quint8 reduce_range: [0, 127]; [-1, 3]: scale 4/127, zp = round(31.75) = 32.
  QuantSpec u = spec(DType::u8, Scheme::asymmetric);
  u.reduce_range = true;
  const QParams qp = compute_qparams(-1.0f, 3.0f, u);
  EXPECT_EQ(qp.scale, 4.0f / 127.0f);
  EXPECT_EQ(qp.zero_point, 32);
  // qint8 reduce_range: [-64, 63]; symmetric scale = 3 / 63.5.
  QuantSpec s = spec(DType::s8, Scheme::symmetric);
  s.reduce_range = true;
  EXPECT_EQ(s.qmin(), -64);
  EXPECT_EQ(s.qmax(), 63);
  EXPECT_EQ(compute_qparams(-1.0f, 3.0f, s).scale, 3.0f / 63.5f);
  // Symmetric quint8 with reduce_range would keep zero point 128 outside
  // [0, 127]; PyTorch's MinMaxObserver refuses it and so does sparq (the
  // full audit against PyTorch is qparams_pytorch_test.cpp).
  QuantSpec su = spec(DType::u8, Scheme::symmetric);
  su.reduce_range = true;
  EXPECT_THROW(compute_qparams(-1.0f, 3.0f, su), Error);
  // A custom range is halved by reduce_range (PyTorch: quant_min // 2).
  QuantSpec cr = spec(DType::s8, Scheme::asymmetric);
  cr.quant_min = -127;
  cr.quant_max = 127;
  cr.reduce_range = true;
  EXPECT_EQ(cr.qmin(), -64);
  EXPECT_EQ(cr.qmax(), 63);
}

TEST(ComputeQParams, NarrowAndCustomRanges) {
  QuantSpec n = spec(DType::s8, Scheme::symmetric);
  n.narrow_range = true;
  EXPECT_EQ(n.qmin(), -127);
  EXPECT_EQ(compute_qparams(-1.0f, 1.0f, n).scale, 1.0f / 127.0f);
  QuantSpec nu = spec(DType::u8, Scheme::asymmetric);
  nu.narrow_range = true;
  EXPECT_EQ(nu.qmin(), 1);
  EXPECT_EQ(nu.qmax(), 255);
  // Custom range with symmetric quint8: zp = (0 + 15) // 2 = 7 (PyTorch's
  // has_customized_qrange branch), scale = 3 / 7.5.
  QuantSpec c = spec(DType::u8, Scheme::symmetric);
  c.quant_min = 0;
  c.quant_max = 15;
  const QParams qp = compute_qparams(-1.0f, 3.0f, c);
  EXPECT_EQ(qp.zero_point, 7);
  EXPECT_EQ(qp.scale, 3.0f / 7.5f);
  // Custom asymmetric int8 [-8, 7] (a 4-bit range in 8-bit storage):
  // scale = 4/15, zp = -8 - round(-1 / (4/15)) = -8 + round(3.75) = -4.
  QuantSpec c4 = spec(DType::s8, Scheme::asymmetric);
  c4.quant_min = -8;
  c4.quant_max = 7;
  const QParams q4 = compute_qparams(-1.0f, 3.0f, c4);
  EXPECT_EQ(q4.scale, 4.0f / 15.0f);
  EXPECT_EQ(q4.zero_point, -4);
}

TEST(ComputeQParams, ScaleClampedToEps) {
  const QParams z = compute_qparams(0.0f, 0.0f, spec(DType::u8, Scheme::asymmetric));
  EXPECT_EQ(z.scale, std::numeric_limits<float>::epsilon());
  EXPECT_EQ(z.zero_point, 0);
  QuantSpec e = spec(DType::s8, Scheme::symmetric);
  e.eps = 1e-3f;
  EXPECT_EQ(compute_qparams(-1e-6f, 1e-6f, e).scale, 1e-3f);
}

TEST(ComputeQParams, Errors) {
  const QuantSpec s;
  EXPECT_THROW(compute_qparams(2.0f, 1.0f, s), Error);
  EXPECT_THROW(compute_qparams(NAN, 1.0f, s), Error);
  EXPECT_THROW(compute_qparams(-INFINITY, 1.0f, s), Error);
  EXPECT_THROW(compute_qparams(0.0f, INFINITY, s), Error);
  // max - min overflows float.
  EXPECT_THROW(compute_qparams(-3e38f, 3e38f, spec(DType::u8, Scheme::asymmetric)), Error);
  QuantSpec only_min;
  only_min.quant_min = -3;
  EXPECT_THROW(compute_qparams(-1.0f, 1.0f, only_min), Error);
  QuantSpec outside;
  outside.dtype = DType::u8;
  outside.quant_min = -1;
  outside.quant_max = 10;
  EXPECT_THROW(compute_qparams(-1.0f, 1.0f, outside), Error);
  QuantSpec inverted;
  inverted.quant_min = 5;
  inverted.quant_max = 5;
  EXPECT_THROW(compute_qparams(-1.0f, 1.0f, inverted), Error);
  QuantSpec bad_eps;
  bad_eps.eps = 0.0f;
  EXPECT_THROW(compute_qparams(-1.0f, 1.0f, bad_eps), Error);
  try {
    compute_qparams(3.5f, 1.25f, s);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("3.5"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("1.25"), std::string::npos) << e.what();
  }
}

TEST(ComputeQParams, PerChannel) {
  const std::vector<float> mins = {-1.0f, 0.5f, -4.0f}, maxs = {3.0f, 2.0f, -1.0f};
  QuantSpec s = spec(DType::u8, Scheme::asymmetric);
  s.granularity = Granularity::per_channel;
  s.axis = -1;
  const ChannelQParams qp = compute_qparams(mins, maxs, s);
  ASSERT_EQ(qp.size(), 3u);
  EXPECT_EQ(qp.axis, -1);
  for (std::size_t c = 0; c < 3; ++c) EXPECT_EQ(qp[c], compute_qparams(mins[c], maxs[c], s));
  EXPECT_THROW(compute_qparams(std::span<const float>(mins).first(2), maxs, s), Error);
  EXPECT_THROW(compute_qparams(std::span<const float>(), std::span<const float>(), s), Error);
  const std::vector<float> bad = {-1.0f, NAN, 0.0f};
  EXPECT_THROW(compute_qparams(bad, maxs, s), Error);
}

// Properties over random ranges: 0 is exactly representable (zp in range),
// the range ends quantize to within half a step (plus the clamping at the
// ends), and the zero point matches an FP64 evaluation of the formula
// except where the float32 quotient lands within 1e-4 of a .5 tie.
TEST(ComputeQParams, RandomRangeProperties) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-100.0f, 100.0f);
  for (int i = 0; i < 20000; ++i) {
    float lo = u(rng), hi = u(rng);
    if (lo > hi) std::swap(lo, hi);
    for (DType d : {DType::s8, DType::u8}) {
      const QuantSpec s = spec(d, Scheme::asymmetric);
      const QParams qp = compute_qparams(lo, hi, s);
      ASSERT_GE(qp.zero_point, s.qmin());
      ASSERT_LE(qp.zero_point, s.qmax());
      const double lo0 = std::min<double>(lo, 0.0), hi0 = std::max<double>(hi, 0.0);
      const double scale = std::max((hi0 - lo0) / (s.qmax() - s.qmin()), 1.1920928955078125e-07);
      ASSERT_NEAR(qp.scale, scale, scale * 1e-6);
      const double zq = lo0 / scale;
      if (std::fabs(std::fabs(zq - std::trunc(zq)) - 0.5) > 1e-4) {
        const double zp = std::clamp<double>(s.qmin() - std::nearbyint(zq), s.qmin(), s.qmax());
        ASSERT_EQ(qp.zero_point, static_cast<int32_t>(zp)) << lo << " " << hi;
      }
      // The range end points land inside [qmin, qmax] within rounding.
      ASSERT_GE(std::nearbyint(lo0 / qp.scale) + qp.zero_point, s.qmin() - 1);
      ASSERT_LE(std::nearbyint(hi0 / qp.scale) + qp.zero_point, s.qmax() + 1);
    }
  }
}

}  // namespace
}  // namespace sparq
