// QuantizedModel::forward runs a conv and the max pool after it as one
// blocked pass (im2col in row blocks, pooling on the exact int32 sums, then
// requantize or dequantize); forward_trace runs the units one by one. The
// two must give the same bytes, and the same error, for every conv shape,
// pool shape, batch, quantization mode and ISA. Blocks hold ~192 KiB of
// im2col rows in whole images (nn_internal.hpp): the first conv below
// (73 bytes per row, 143 rows per image) takes 18 images per block, so
// batch 40 runs blocks of 18, 18 and 4 images.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "sparq/nn/nn.hpp"
#include "support/isa_param.hpp"

namespace {

namespace nn = sparq::nn;

struct ConvShape {
  int64_t in, out, kernel, stride, padding, dilation, groups;
};
struct PoolShape {
  int64_t kernel, stride, padding;
};

class FusedForward : public sparq::testing::IsaTest {};

nn::QuantizedModel quantize(const nn::Sequential& s, const nn::Calibrator& cal, int mode) {
  switch (mode) {
    case 0:
      return nn::quantize_dynamic(s);
    case 1: {
      nn::DynamicConfig dc;
      dc.weight_granularity = sparq::Granularity::per_tensor;
      return nn::quantize_dynamic(s, dc);
    }
    case 2:
      return nn::quantize_static(cal);
    default: {
      nn::StaticConfig sc;
      sc.weight_granularity = sparq::Granularity::per_tensor;
      return nn::quantize_static(cal, sc);
    }
  }
}

TEST_P(FusedForward, MatchesUnitByUnitBitForBit) {
  std::mt19937 rng(9);
  const ConvShape convs[] = {{1, 16, 3, 1, 1, 1, 1}, {3, 8, 3, 2, 0, 1, 1}, {4, 6, 3, 1, 2, 2, 2}};
  const PoolShape pools[] = {{2, 0, 0}, {3, 2, 1}};
  int compared = 0;
  for (const ConvShape& c : convs) {
    for (const PoolShape& p : pools) {
      for (int64_t batch : {3, 40}) {
        nn::Sequential s;
        s.add(nn::Conv2d(c.in, c.out, c.kernel,
                         {.stride = {c.stride, c.stride},
                          .padding = {c.padding, c.padding},
                          .dilation = {c.dilation, c.dilation},
                          .groups = c.groups}))
            .add(nn::ReLU6())
            .add(nn::MaxPool2d(p.kernel, p.stride, p.padding))
            .add(nn::Conv2d(c.out, 4, 1))
            .add(nn::MaxPool2d(2));
        s.init_parameters(rng());
        nn::Tensor x({batch, 13, 11, c.in});
        std::uniform_real_distribution<float> u(-1.0f, 2.0f);
        for (float& v : x.data) v = u(rng);
        nn::CalibrationConfig cc;
        cc.observer.kind = sparq::ObserverKind::minmax;
        cc.keep_samples = 0;
        nn::Calibrator cal(s, cc);
        cal.observe(x);
        for (int mode = 0; mode < 4; ++mode) {
          SCOPED_TRACE("conv in " + std::to_string(c.in) + " k " + std::to_string(c.kernel) +
                       " groups " + std::to_string(c.groups) + ", pool k " +
                       std::to_string(p.kernel) + ", batch " + std::to_string(batch) + ", mode " +
                       std::to_string(mode));
          const nn::QuantizedModel q = quantize(s, cal, mode);
          const nn::Tensor fused = q.forward(x);
          const nn::Tensor units = q.forward_trace(x).back();
          EXPECT_EQ(fused.shape, units.shape);
          EXPECT_EQ(fused.data, units.data);
          ++compared;
        }
      }
    }
  }
  EXPECT_EQ(compared, 3 * 2 * 2 * 4);
}

TEST_P(FusedForward, PoolLargerThanConvOutputFailsLikeUnitByUnit) {
  nn::Sequential s;
  s.add(nn::Conv2d(1, 2, 3)).add(nn::MaxPool2d(5));
  s.init_parameters(1);
  const nn::Tensor x({2, 5, 5, 1});
  const nn::QuantizedModel q = nn::quantize_dynamic(s);
  std::string fused, units;
  try {
    (void)q.forward(x);
  } catch (const sparq::Error& e) {
    fused = e.what();
  }
  try {
    (void)q.forward_trace(x);
  } catch (const sparq::Error& e) {
    units = e.what();
  }
  EXPECT_FALSE(fused.empty());
  EXPECT_EQ(fused, units);
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(FusedForward);

}  // namespace
