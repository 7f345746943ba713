// FP32 reference layers against FP64 naive loops, Sequential's state_dict,
// and BatchNorm folding exact to FP32 rounding.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <random>

#include "sparq/nn/nn.hpp"
#include "support/nn_random.hpp"

namespace nn = sparq::nn;
using sparq::test::random_tensor;

namespace {

// Direct FP64 NHWC convolution; also returns sum |x*w| per output for the tolerance.
void conv_ref(const nn::Conv2d& c, const nn::Tensor& x, std::vector<double>& y,
              std::vector<double>& mag) {
  const int64_t b = x.shape[0], h = x.shape[1], w = x.shape[2], oh = c.out_h(h), ow = c.out_w(w);
  const int64_t cg = c.in_channels / c.groups, og = c.out_channels / c.groups;
  y.assign(static_cast<std::size_t>(b * oh * ow * c.out_channels), 0.0);
  mag = y;
  for (int64_t n = 0; n < b; ++n)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t o = 0; o < c.out_channels; ++o) {
          const int64_t g = o / og;
          double acc = c.has_bias() ? c.bias.data[o] : 0.0, m = std::fabs(acc);
          for (int64_t ky = 0; ky < c.kernel_h; ++ky)
            for (int64_t kx = 0; kx < c.kernel_w; ++kx) {
              const int64_t iy = oy * c.stride_h - c.pad_h + ky * c.dilation_h;
              const int64_t ix = ox * c.stride_w - c.pad_w + kx * c.dilation_w;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              for (int64_t ci = 0; ci < cg; ++ci) {
                const double xv = x.data[((n * h + iy) * w + ix) * c.in_channels + g * cg + ci];
                const double wv =
                    c.weight.data[((o * c.kernel_h + ky) * c.kernel_w + kx) * cg + ci];
                acc += xv * wv;
                m += std::fabs(xv * wv);
              }
            }
          const auto idx = static_cast<std::size_t>(((n * oh + oy) * ow + ox) * c.out_channels + o);
          y[idx] = acc;
          mag[idx] = m;
        }
}

}  // namespace

TEST(NnLayers, LinearMatchesFp64) {
  std::mt19937 rng(1);
  nn::Sequential s;
  s.add(nn::Linear(37, 13));
  s.init_parameters(3);
  const auto& lin = std::get<nn::Linear>(s[0]);
  const nn::Tensor x = random_tensor({5, 37}, rng);
  const nn::Tensor y = s.forward(x);
  ASSERT_EQ(y.shape, (std::vector<int64_t>{5, 13}));
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t o = 0; o < 13; ++o) {
      double acc = lin.bias.data[o], mag = std::fabs(acc);
      for (int64_t k = 0; k < 37; ++k) {
        acc += static_cast<double>(x.data[i * 37 + k]) * lin.weight.data[o * 37 + k];
        mag += std::fabs(static_cast<double>(x.data[i * 37 + k]) * lin.weight.data[o * 37 + k]);
      }
      // Worst-case FP32 summation error of K+1 terms: (K+1) * eps * sum |terms|.
      EXPECT_NEAR(y.data[i * 13 + o], acc, 38 * FLT_EPSILON * mag);
    }
}

struct ConvCase {
  int64_t in, out, k, stride, pad, dil, groups;
};

class NnConvFp32 : public ::testing::TestWithParam<ConvCase> {};

TEST_P(NnConvFp32, MatchesFp64) {
  const ConvCase p = GetParam();
  std::mt19937 rng(7);
  nn::Conv2d c(p.in, p.out, p.k,
               {.stride = {p.stride, p.stride},
                .padding = {p.pad, p.pad},
                .dilation = {p.dil, p.dil},
                .groups = p.groups});
  for (float& v : c.weight.data) v = std::uniform_real_distribution<float>(-1, 1)(rng);
  for (float& v : c.bias.data) v = std::uniform_real_distribution<float>(-1, 1)(rng);
  const nn::Tensor x = random_tensor({2, 9, 8, p.in}, rng);
  const nn::Tensor y = c.forward(x);
  std::vector<double> ref, mag;
  conv_ref(c, x, ref, mag);
  ASSERT_EQ(y.data.size(), ref.size());
  const double terms = static_cast<double>(c.patch_size() + 1);
  for (std::size_t i = 0; i < ref.size(); ++i)
    EXPECT_NEAR(y.data[i], ref[i], terms * FLT_EPSILON * mag[i]) << i;
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, NnConvFp32,
    ::testing::Values(ConvCase{3, 5, 3, 1, 1, 1, 1}, ConvCase{4, 6, 3, 2, 0, 1, 1},
                      ConvCase{2, 3, 3, 1, 2, 2, 1}, ConvCase{6, 6, 3, 1, 1, 1, 6},
                      ConvCase{4, 8, 3, 2, 1, 1, 4}, ConvCase{6, 4, 1, 1, 0, 1, 2}));

TEST(NnLayers, MaxPoolReluFlatten) {
  nn::Tensor x({1, 3, 3, 2}, {1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 8, -8, 9, -9});
  const nn::Tensor p = nn::MaxPool2d(2, 1).forward(x);
  EXPECT_EQ(p.shape, (std::vector<int64_t>{1, 2, 2, 2}));
  EXPECT_EQ(p.data, (std::vector<float>{5, -1, 6, -2, 8, -4, 9, -5}));
  const nn::Tensor padded = nn::MaxPool2d(2, 2, 1).forward(x);  // corners see one real value
  EXPECT_EQ(padded.shape, (std::vector<int64_t>{1, 2, 2, 2}));
  EXPECT_EQ(padded.data[0], 1.0f);
  EXPECT_EQ(padded.data[1], -1.0f);
  EXPECT_EQ(nn::ReLU6().forward(nn::Tensor({3}, {-1, 3, 9})).data, (std::vector<float>{0, 3, 6}));
  EXPECT_EQ(nn::ReLU().forward(nn::Tensor({2}, {-1, 3})).data, (std::vector<float>{0, 3}));
  EXPECT_EQ(nn::Flatten().forward(x).shape, (std::vector<int64_t>{1, 18}));
}

TEST(NnLayers, BatchNormFoldingIsExactToFp32Rounding) {
  std::mt19937 rng(11);
  for (bool conv : {false, true}) {
    nn::Sequential s;
    if (conv) {
      s.add(nn::Conv2d(3, 5, 3, {.padding = {1, 1}})).add(nn::BatchNorm2d(5)).add(nn::ReLU());
    } else {
      s.add(nn::Linear(6, 5, /*bias=*/false)).add(nn::BatchNorm1d(5)).add(nn::ReLU());
    }
    s.init_parameters(5);
    auto& bn = std::get<nn::BatchNorm>(s[1]);
    for (int c = 0; c < 5; ++c) {
      bn.weight.data[c] = std::uniform_real_distribution<float>(0.5f, 2.0f)(rng);
      bn.bias.data[c] = std::uniform_real_distribution<float>(-1, 1)(rng);
      bn.running_mean.data[c] = std::uniform_real_distribution<float>(-1, 1)(rng);
      bn.running_var.data[c] = std::uniform_real_distribution<float>(0.1f, 3.0f)(rng);
    }
    const nn::Sequential original = s;
    ASSERT_EQ(nn::fold_batchnorm(s), 1);  // `bn` dangles from here: use the copy
    const auto& bn_kept = std::get<nn::BatchNorm>(original[1]);
    ASSERT_EQ(s.size(), 2u);
    // The folded parameters are the FP32 roundings of the exact (FP64) folded values.
    const nn::Tensor& w0 =
        conv ? std::get<nn::Conv2d>(original[0]).weight : std::get<nn::Linear>(original[0]).weight;
    const nn::Tensor& b0 =
        conv ? std::get<nn::Conv2d>(original[0]).bias : std::get<nn::Linear>(original[0]).bias;
    const nn::Tensor& w1 =
        conv ? std::get<nn::Conv2d>(s[0]).weight : std::get<nn::Linear>(s[0]).weight;
    const nn::Tensor& b1 = conv ? std::get<nn::Conv2d>(s[0]).bias : std::get<nn::Linear>(s[0]).bias;
    const int64_t per = w0.numel() / 5;
    for (int64_t c = 0; c < 5; ++c) {
      const double g = double(bn_kept.weight.data[c]) /
                       std::sqrt(double(bn_kept.running_var.data[c]) + double(bn_kept.eps));
      for (int64_t j = 0; j < per; ++j) {
        EXPECT_EQ(w1.data[c * per + j], static_cast<float>(double(w0.data[c * per + j]) * g));
      }
      const double b = b0.empty() ? 0.0 : b0.data[c];
      EXPECT_EQ(b1.data[c],
                static_cast<float>((b - bn_kept.running_mean.data[c]) * g + bn_kept.bias.data[c]));
    }
    // And the two models agree to FP32 rounding of the computation: each path
    // rounds every product/sum once, so their difference stays within a few
    // ulps of sum |terms| (the same (K + 3) * eps bound as the layer tests).
    const nn::Tensor x =
        random_tensor(conv ? std::vector<int64_t>{2, 4, 4, 3} : std::vector<int64_t>{4, 6}, rng);
    const nn::Tensor ya = original.forward(x), yb = s.forward(x);
    const int64_t k = conv ? 27 : 6;
    for (std::size_t i = 0; i < ya.data.size(); ++i) {
      EXPECT_NEAR(ya.data[i], yb.data[i], (k + 3) * FLT_EPSILON * 16.0f) << i;
    }
  }
}

TEST(NnLayers, StateDictRoundTripAndErrors) {
  nn::Sequential s{nn::Conv2d(1, 2, 3), nn::BatchNorm2d(2), nn::ReLU(), nn::Flatten(),
                   nn::Linear(8, 3)};
  s.init_parameters(1);
  nn::TensorMap sd = s.state_dict();
  EXPECT_EQ(sd.size(), 8u);  // conv w,b; bn 4; linear w,b
  EXPECT_TRUE(sd.count("1.running_var"));
  nn::Sequential t{nn::Conv2d(1, 2, 3), nn::BatchNorm2d(2), nn::ReLU(), nn::Flatten(),
                   nn::Linear(8, 3)};
  sd["1.num_batches_tracked"] = nn::Tensor({}, {1.0f});
  t.load_state_dict(sd);
  EXPECT_EQ(t.state_dict(), s.state_dict());
  nn::TensorMap bad = sd;
  bad["4.weight"] = nn::Tensor({3, 7});
  EXPECT_THROW(t.load_state_dict(bad), sparq::Error);
  bad = sd;
  bad.erase("0.bias");
  EXPECT_THROW(t.load_state_dict(bad), sparq::Error);
  t.load_state_dict(bad, /*strict=*/false);
  bad = sd;
  bad["9.weight"] = nn::Tensor({1});
  EXPECT_THROW(t.load_state_dict(bad), sparq::Error);
  EXPECT_EQ(s.weight_bytes(), (18 + 2 + 8 + 24 + 3) * sizeof(float));
}

TEST(NnLayers, ErrorsNameTheProblem) {
  EXPECT_THROW(nn::Linear(0, 3), sparq::Error);
  EXPECT_THROW(nn::Conv2d(3, 4, 3, {.groups = 2}), sparq::Error);
  EXPECT_THROW(nn::MaxPool2d(2, 2, 2), sparq::Error);
  nn::Sequential s{nn::Linear(4, 2)};
  try {
    s.forward(nn::Tensor({1, 5}));
    FAIL();
  } catch (const sparq::Error& e) {
    EXPECT_NE(std::string(e.what()).find("in_features = 4"), std::string::npos) << e.what();
  }
  EXPECT_THROW(nn::Conv2d(1, 1, 5).forward(nn::Tensor({1, 3, 3, 1})), sparq::Error);
}

TEST(NnLayers, OihwToOhwi) {
  nn::Tensor w({2, 3, 1, 2});
  for (std::size_t i = 0; i < w.data.size(); ++i) w.data[i] = float(i);
  const nn::Tensor o = nn::oihw_to_ohwi(w);
  EXPECT_EQ(o.shape, (std::vector<int64_t>{2, 1, 2, 3}));
  EXPECT_EQ(o.data[1], w.data[2]);  // (o0, h0, w0, i1) <- (o0, i1, h0, w0)
}
