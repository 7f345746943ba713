// CNN graph operators (ops.hpp): AvgPool2d and AdaptiveAvgPool2d against
// hand-computed cases and an FP64 loop written from PyTorch's definitions,
// Hardswish / SiLU / Sigmoid against their FP64 formulas, and the errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "sparq/error.hpp"
#include "sparq/nn/ops.hpp"

namespace nn = sparq::nn;

namespace {

nn::Tensor random_tensor(std::vector<int64_t> shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  nn::Tensor t(std::move(shape));
  for (float& v : t.data) v = u(rng);
  return t;
}

// 1 x h x w x 1 holding 1, 2, 3, ... in row-major order.
nn::Tensor counting_image(int64_t h, int64_t w) {
  nn::Tensor t({1, h, w, 1});
  for (std::size_t i = 0; i < t.data.size(); ++i) t.data[i] = static_cast<float>(i + 1);
  return t;
}

// PyTorch's avg_pool2d (aten/src/ATen/native/cpu/AvgPoolKernel.cpp), in FP64:
// the window is first clipped to the padded image (its size is the divisor
// with count_include_pad), then to the image itself.
std::vector<double> avg_pool_reference(const nn::AvgPool2d& p, const nn::Tensor& x) {
  const int64_t n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
  const int64_t oh = (h + 2 * p.pad_h - p.kernel_h) / p.stride_h + 1;
  const int64_t ow = (w + 2 * p.pad_w - p.kernel_w) / p.stride_w + 1;
  std::vector<double> y;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t ch = 0; ch < c; ++ch) {
          int64_t hstart = oy * p.stride_h - p.pad_h, wstart = ox * p.stride_w - p.pad_w;
          int64_t hend = std::min(hstart + p.kernel_h, h + p.pad_h);
          int64_t wend = std::min(wstart + p.kernel_w, w + p.pad_w);
          const int64_t pool_size = (hend - hstart) * (wend - wstart);
          hstart = std::max<int64_t>(hstart, 0);
          wstart = std::max<int64_t>(wstart, 0);
          hend = std::min(hend, h);
          wend = std::min(wend, w);
          double sum = 0;
          for (int64_t iy = hstart; iy < hend; ++iy)
            for (int64_t ix = wstart; ix < wend; ++ix)
              sum += x.data[((b * h + iy) * w + ix) * c + ch];
          const int64_t divisor =
              p.count_include_pad ? pool_size : (hend - hstart) * (wend - wstart);
          y.push_back(sum / static_cast<double>(divisor));
        }
  return y;
}

// PyTorch's adaptive_avg_pool2d bins, written with floating floor/ceil (the
// operator under test uses integer arithmetic).
std::vector<double> adaptive_avg_pool_reference(int64_t out_h, int64_t out_w, const nn::Tensor& x) {
  const int64_t n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
  auto start = [](int64_t i, int64_t in, int64_t out) {
    return static_cast<int64_t>(std::floor(static_cast<double>(i * in) / static_cast<double>(out)));
  };
  auto end = [](int64_t i, int64_t in, int64_t out) {
    return static_cast<int64_t>(
        std::ceil(static_cast<double>((i + 1) * in) / static_cast<double>(out)));
  };
  std::vector<double> y;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oy = 0; oy < out_h; ++oy)
      for (int64_t ox = 0; ox < out_w; ++ox)
        for (int64_t ch = 0; ch < c; ++ch) {
          double sum = 0;
          int64_t count = 0;
          for (int64_t iy = start(oy, h, out_h); iy < end(oy, h, out_h); ++iy)
            for (int64_t ix = start(ox, w, out_w); ix < end(ox, w, out_w); ++ix, ++count)
              sum += x.data[((b * h + iy) * w + ix) * c + ch];
          y.push_back(sum / static_cast<double>(count));
        }
  return y;
}

// Values in [-1, 1] averaged over at most a few hundred taps in FP32: the
// sum's rounding error is below taps * 2^-24 * sum |x| <= 1e-5 for 160 taps.
constexpr double kPoolTolerance = 1e-5;

void expect_close(const nn::Tensor& got, const std::vector<double>& want, double tolerance) {
  ASSERT_EQ(got.data.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(got.data[i], want[i], tolerance) << "element " << i;
}

}  // namespace

TEST(NnCnnOps, AvgPoolHandComputed) {
  const nn::Tensor x = counting_image(3, 3);  // 1 2 3 / 4 5 6 / 7 8 9
  const nn::Tensor y = nn::AvgPool2d(2, 1).forward(x);
  EXPECT_EQ(y.shape, (std::vector<int64_t>{1, 2, 2, 1}));
  EXPECT_EQ(y.data, (std::vector<float>{3.0f, 4.0f, 6.0f, 7.0f}));

  // 3x3 windows, stride 2, padding 1: each window holds a 2x2 corner of the
  // image, divided by 9 (padding counted, PyTorch's default) or by 4.
  nn::AvgPool2d padded(3, 2, 1);
  const nn::Tensor with_pad = padded.forward(x);
  EXPECT_EQ(with_pad.shape, (std::vector<int64_t>{1, 2, 2, 1}));
  EXPECT_FLOAT_EQ(with_pad.data[0], 12.0f / 9.0f);
  EXPECT_FLOAT_EQ(with_pad.data[1], 16.0f / 9.0f);
  EXPECT_FLOAT_EQ(with_pad.data[2], 24.0f / 9.0f);
  EXPECT_FLOAT_EQ(with_pad.data[3], 28.0f / 9.0f);
  padded.count_include_pad = false;
  EXPECT_EQ(padded.forward(x).data, (std::vector<float>{3.0f, 4.0f, 6.0f, 7.0f}));
}

TEST(NnCnnOps, AvgPoolMatchesPyTorchDefinition) {
  const nn::Tensor x = random_tensor({2, 9, 11, 5}, 1);
  struct Case {
    int64_t kh, kw, sh, sw, ph, pw;
  };
  for (const Case& c : {Case{3, 3, 2, 2, 1, 1}, Case{2, 3, 1, 2, 0, 1}, Case{5, 4, 3, 1, 2, 2},
                        Case{1, 1, 1, 1, 0, 0}, Case{9, 11, 1, 1, 0, 0}}) {
    for (bool include_pad : {true, false}) {
      nn::AvgPool2d p;
      p.kernel_h = c.kh, p.kernel_w = c.kw, p.stride_h = c.sh, p.stride_w = c.sw;
      p.pad_h = c.ph, p.pad_w = c.pw, p.count_include_pad = include_pad;
      SCOPED_TRACE(p.describe());
      const nn::Tensor y = p.forward(x);
      EXPECT_EQ(y.shape[0], 2);
      EXPECT_EQ(y.shape[3], 5);
      expect_close(y, avg_pool_reference(p, x), kPoolTolerance);
    }
  }
}

TEST(NnCnnOps, AvgPoolDescribe) {
  nn::AvgPool2d p(3, 2, 1);
  EXPECT_EQ(p.describe(), "AvgPool2d(k3x3, s2x2, p1x1)");
  p.count_include_pad = false;
  EXPECT_EQ(p.describe(), "AvgPool2d(k3x3, s2x2, p1x1, exclude pad)");
  EXPECT_EQ(nn::AvgPool2d(2).stride_h, 2);  // stride 0: the kernel size, as PyTorch
}

TEST(NnCnnOps, AvgPoolRejectsBadArguments) {
  EXPECT_THROW(nn::AvgPool2d(0), sparq::Error);
  EXPECT_THROW(nn::AvgPool2d(2, -1), sparq::Error);
  EXPECT_THROW(nn::AvgPool2d(2, 1, -1), sparq::Error);
  EXPECT_THROW(nn::AvgPool2d(2, 2, 2), sparq::Error);  // padding above half the kernel
  EXPECT_THROW(nn::AvgPool2d(int64_t{1} << 25), sparq::Error);
  const nn::AvgPool2d p(3);
  EXPECT_THROW((void)p.forward(nn::Tensor({2, 3, 3})), sparq::Error);     // not NHWC
  EXPECT_THROW((void)p.forward(nn::Tensor({1, 2, 5, 1})), sparq::Error);  // smaller than the kernel
  nn::AvgPool2d edited = p;
  edited.stride_w = 0;  // fields set by hand are validated by forward too
  EXPECT_THROW((void)edited.forward(nn::Tensor({1, 3, 3, 1})), sparq::Error);
  try {
    (void)nn::AvgPool2d(2, 2, 2);
  } catch (const sparq::Error& e) {
    EXPECT_NE(std::string(e.what()).find("padding 2x2"), std::string::npos) << e.what();
  }
}

TEST(NnCnnOps, AdaptiveAvgPoolHandComputed) {
  // 5 -> 2 bins are [0, 3) and [2, 5): the middle row and column count twice.
  const nn::Tensor x = counting_image(5, 5);
  const nn::Tensor y = nn::AdaptiveAvgPool2d{.out_h = 2, .out_w = 2}.forward(x);
  EXPECT_EQ(y.shape, (std::vector<int64_t>{1, 2, 2, 1}));
  // Top-left bin: rows 0-2, columns 0-2 of 1..25, mean 7; the others shift by 2 and 10.
  EXPECT_EQ(y.data, (std::vector<float>{7.0f, 9.0f, 17.0f, 19.0f}));

  // Global average: the mean of 1..25.
  const nn::Tensor g = nn::AdaptiveAvgPool2d{}.forward(x);
  EXPECT_EQ(g.shape, (std::vector<int64_t>{1, 1, 1, 1}));
  EXPECT_EQ(g.data[0], 13.0f);

  // Upsampling 2 -> 3: bins [0, 1), [0, 2), [1, 2).
  const nn::Tensor up = nn::AdaptiveAvgPool2d{.out_h = 1, .out_w = 3}.forward(counting_image(1, 2));
  EXPECT_EQ(up.data, (std::vector<float>{1.0f, 1.5f, 2.0f}));
}

TEST(NnCnnOps, AdaptiveAvgPoolMatchesPyTorchDefinition) {
  const nn::Tensor x = random_tensor({3, 7, 10, 6}, 2);
  for (auto [oh, ow] : {std::pair<int64_t, int64_t>{1, 1}, {2, 3}, {3, 4}, {7, 10}, {9, 13}}) {
    SCOPED_TRACE(testing::Message() << oh << "x" << ow);
    const nn::Tensor y = nn::AdaptiveAvgPool2d{.out_h = oh, .out_w = ow}.forward(x);
    EXPECT_EQ(y.shape, (std::vector<int64_t>{3, oh, ow, 6}));
    expect_close(y, adaptive_avg_pool_reference(oh, ow, x), kPoolTolerance);
  }
  EXPECT_EQ((nn::AdaptiveAvgPool2d{.out_h = 2, .out_w = 3}.describe()), "AdaptiveAvgPool2d(2x3)");
}

TEST(NnCnnOps, AdaptiveAvgPoolRejectsBadArguments) {
  const nn::Tensor x({1, 4, 4, 2});
  EXPECT_THROW((void)nn::AdaptiveAvgPool2d{.out_h = 0}.forward(x), sparq::Error);
  EXPECT_THROW((void)nn::AdaptiveAvgPool2d{.out_w = -1}.forward(x), sparq::Error);
  EXPECT_THROW((void)nn::AdaptiveAvgPool2d{}.forward(nn::Tensor({1, 0, 4, 2})), sparq::Error);
  EXPECT_THROW((void)nn::AdaptiveAvgPool2d{}.forward(nn::Tensor({4, 2})), sparq::Error);
}

namespace {

// The activations' FP64 formulas.
double hardswish_ref(double x) { return x * std::min(std::max(x + 3.0, 0.0), 6.0) / 6.0; }
double sigmoid_ref(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double silu_ref(double x) { return x * sigmoid_ref(x); }

// A grid over [-12, 12] (both tails of the sigmoid) plus the kinks of Hardswish.
nn::Tensor activation_inputs() {
  std::vector<float> v;
  for (int i = -240; i <= 240; ++i) v.push_back(static_cast<float>(i) * 0.05f);
  for (float x : {-3.0f, 3.0f, -3.0001f, 2.9999f, 1e-30f, -1e-30f}) v.push_back(x);
  const auto n = static_cast<int64_t>(v.size());
  return nn::Tensor({1, n}, std::move(v));
}

// expf is within 1 ulp and each formula adds at most three roundings, so the
// FP32 results are within ~4 ulp (2.4e-7 relative) of FP64; 1e-6 relative
// (absolute near zero) leaves room for a libm 2-3 ulp worse than glibc's.
template <class Op, class Ref>
void expect_activation(const Op& op, Ref ref) {
  const nn::Tensor x = activation_inputs();
  const nn::Tensor y = op.forward(x);
  EXPECT_EQ(y.shape, x.shape);
  for (std::size_t i = 0; i < x.data.size(); ++i) {
    const double want = ref(static_cast<double>(x.data[i]));
    ASSERT_NEAR(y.data[i], want, 1e-6 * std::max(1.0, std::fabs(want))) << "x = " << x.data[i];
  }
}

}  // namespace

TEST(NnCnnOps, ActivationsMatchFormulas) {
  expect_activation(nn::Hardswish{}, hardswish_ref);
  expect_activation(nn::SiLU{}, silu_ref);
  expect_activation(nn::Sigmoid{}, sigmoid_ref);
}

TEST(NnCnnOps, ActivationsExactValuesAndExtremes) {
  constexpr float inf = std::numeric_limits<float>::infinity();
  const nn::Tensor x({1, 1, 2, 3}, {-4.0f, -3.0f, 0.0f, 3.0f, 100.0f, -100.0f});
  // Hardswish is exactly 0 below -3, x above 3, and x (x + 3) / 6 between.
  EXPECT_EQ(nn::Hardswish{}.forward(x).data,
            (std::vector<float>{-0.0f, -0.0f, 0.0f, 3.0f, 100.0f, -0.0f}));
  EXPECT_EQ(nn::Hardswish{}.forward(nn::Tensor({1}, {1.0f})).data[0], 1.0f * 4.0f / 6.0f);

  const nn::Tensor s = nn::Sigmoid{}.forward(x);
  EXPECT_EQ(s.shape, x.shape);
  EXPECT_EQ(s.data[2], 0.5f);
  EXPECT_EQ(s.data[4], 1.0f);
  EXPECT_EQ(s.data[5], 0.0f);  // exp(100) overflows to inf: 1 / inf, not NaN

  const nn::Tensor silu = nn::SiLU{}.forward(x);
  EXPECT_EQ(silu.data[2], 0.0f);
  EXPECT_EQ(silu.data[4], 100.0f);
  EXPECT_EQ(silu.data[5], 0.0f);  // -100 / inf

  const nn::Tensor extremes({3}, {inf, -inf, std::numeric_limits<float>::quiet_NaN()});
  const nn::Tensor sig = nn::Sigmoid{}.forward(extremes);
  EXPECT_EQ(sig.data[0], 1.0f);
  EXPECT_EQ(sig.data[1], 0.0f);
  EXPECT_TRUE(std::isnan(sig.data[2]));
  EXPECT_TRUE(std::isnan(nn::Hardswish{}.forward(extremes).data[2]));  // NaN propagates
  EXPECT_TRUE(std::isnan(nn::SiLU{}.forward(extremes).data[2]));
  EXPECT_EQ(nn::Hardswish{}.forward(extremes).data[0], inf);
}

TEST(NnCnnOps, ActivationsKeepEmptyTensors) {
  EXPECT_TRUE(nn::Sigmoid{}.forward(nn::Tensor({0, 4})).empty());
  EXPECT_EQ(nn::SiLU{}.forward(nn::Tensor({0, 4})).shape, (std::vector<int64_t>{0, 4}));
}
