// Static INT8 depthwise convolutions, bit for bit against an integer
// reference written from the definitions: u8 input quantized with the
// layer's input qparams, exact int32 sums of (x - zp) * w over the taps that
// fall inside the image (zero-point padding adds nothing), then
// requantize(saturate(acc + bias)) with the layer's own stage, on every ISA
// the host runs (the stage kernels are per ISA). Covers the one-output-per-
// channel path (channels innermost) and the channel-multiplier path.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>

#include "sparq/isa.hpp"
#include "sparq/nn/nn.hpp"
#include "sparq/quant/quantize.hpp"
#include "sparq/quant/requantize.hpp"
#include "support/isa_param.hpp"

namespace nn = sparq::nn;

namespace {

struct DwCase {
  int64_t channels, multiplier, kernel, stride, pad, dilation;
  nn::Activation act;
};

class NnDepthwise : public ::testing::TestWithParam<std::tuple<sparq::Isa, DwCase>> {};

TEST_P(NnDepthwise, StaticIsBitExact) {
  sparq::ScopedIsa guard(std::get<0>(GetParam()));
  const DwCase p = std::get<1>(GetParam());
  const int64_t c = p.channels, out_c = c * p.multiplier;
  nn::Sequential s;
  s.add(nn::Conv2d(c, out_c, p.kernel,
                   {.stride = {p.stride, p.stride},
                    .padding = {p.pad, p.pad},
                    .dilation = {p.dilation, p.dilation},
                    .groups = c}));
  if (p.act == nn::Activation::relu) s.add(nn::ReLU());
  if (p.act == nn::Activation::relu6) s.add(nn::ReLU6());
  s.init_parameters(17);
  std::mt19937 rng(18);
  std::uniform_real_distribution<float> u(-1.0f, 3.0f);
  nn::Tensor x({2, 9, 7, c});
  for (float& v : x.data) v = u(rng);
  nn::Calibrator cal(s, {.observer = {.kind = sparq::ObserverKind::minmax}});
  cal.observe(x);
  const nn::QuantizedModel q = nn::quantize_static(cal);
  const auto& qc = std::get<nn::QConv2d>(q.units()[0].op);
  ASSERT_TRUE(qc.depthwise());
  const nn::Tensor got = q.forward(x);

  const sparq::QParams in = qc.input_qparams, out = qc.output_qparams;
  const int64_t h = 9, w = 7, oh = qc.out_h(h), ow = qc.out_w(w);
  ASSERT_EQ(got.shape, (std::vector<int64_t>{2, oh, ow, out_c}));
  std::vector<int32_t> xq(x.data.size());
  for (std::size_t i = 0; i < xq.size(); ++i) {
    xq[i] = sparq::detail::quantize_element(x.data[i], 1.0f / in.scale, in.zero_point,
                                            float(0 - in.zero_point), float(255 - in.zero_point));
  }
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t o = 0; o < out_c; ++o) {
          const int64_t ic = o / p.multiplier, j = o % p.multiplier;
          const auto wv = qc.weights[ic]->values().subspan(j * p.kernel * p.kernel);
          int64_t acc = 0;
          for (int64_t ky = 0; ky < p.kernel; ++ky)
            for (int64_t kx = 0; kx < p.kernel; ++kx) {
              const int64_t iy = oy * p.stride - p.pad + ky * p.dilation;
              const int64_t ix = ox * p.stride - p.pad + kx * p.dilation;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              acc += int64_t{xq[((n * h + iy) * w + ix) * c + ic] - in.zero_point} *
                     wv[ky * p.kernel + kx];
            }
          const sparq::RequantizeStage& st = qc.stages[ic];
          acc += st.bias.empty() ? 0 : st.bias[j];
          const auto acc32 = static_cast<int32_t>(std::clamp<int64_t>(
              acc, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
          const int32_t y = sparq::requantize(acc32, st.multipliers[j], st.output_zero_point,
                                              st.clamp_min, st.clamp_max);
          const float want = static_cast<float>(y - out.zero_point) * out.scale;
          const int64_t idx = ((n * oh + oy) * ow + ox) * out_c + o;
          ASSERT_EQ(got.data[idx], want) << "at " << n << "," << oy << "," << ox << "," << o;
        }
}

INSTANTIATE_TEST_SUITE_P(
    AllIsas, NnDepthwise,
    ::testing::Combine(::testing::ValuesIn(sparq::supported_isas()),
                       ::testing::Values(DwCase{8, 1, 3, 1, 1, 1, nn::Activation::relu6},
                                         DwCase{37, 1, 3, 2, 1, 1, nn::Activation::none},
                                         DwCase{16, 1, 5, 1, 2, 2, nn::Activation::relu},
                                         DwCase{6, 2, 3, 1, 1, 1, nn::Activation::relu})),
    [](const auto& info) {
      const DwCase c = std::get<1>(info.param);
      return std::string(sparq::isa_name(std::get<0>(info.param))) + "_c" +
             std::to_string(c.channels) + "_m" + std::to_string(c.multiplier) + "_k" +
             std::to_string(c.kernel) + "_s" + std::to_string(c.stride) + "_d" +
             std::to_string(c.dilation);
    });

}  // namespace
