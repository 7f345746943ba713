// The PyTorch presets against PyTorch 1.13 itself: the default qconfigs'
// observers (tests/pytorch/presets_reference.py ran them on the data built
// below; the ctest presets_pytorch_table re-checks the table against the
// installed torch). Weights: PerChannelMinMaxObserver / MinMaxObserver
// (qint8, symmetric) scales, bit for bit. Activations: HistogramObserver
// (quint8, affine, reduce_range for x86) qparams; sparq's histogram grid is
// exact and up to 2x coarser than PyTorch's (docs/observers.md), so the L2
// search can stop a few bins apart: the scale must agree within 2% and the
// zero point within 2.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <vector>

#include "sparq/nn/nn.hpp"
#include "sparq/observe/histogram.hpp"

namespace nn = sparq::nn;

namespace {

struct Activation {
  bool reduce_range;
  float scale;
  int32_t zero_point;
  float min, max;  // PyTorch's observed min/max
};
struct Table {
  Activation activations[2];
  float per_channel[16];
  float per_tensor[1];
};

const Table kTorch = {
    // clang-format off
    // BEGIN PYTORCH PRESETS
    // HistogramObserver(reduce_range=True), (reduce_range=False)
    {{true, 0x1.7d1d2a0000000p-3f, 19, -0x1.bfd4380000000p+1f, 0x1.4ad8a60000000p+4f}, {false, 0x1.7b9e8e0000000p-4f, 38, -0x1.bfd4380000000p+1f, 0x1.4ad8a60000000p+4f}},
    // per-channel weight scales
    {0x1.0000000000000p-23f, 0x1.00e4f20000000p-9f, 0x1.8006fe0000000p-9f, 0x1.00a12a0000000p-8f, 0x1.4005d40000000p-8f, 0x1.81808a0000000p-8f, 0x1.c11a0a0000000p-8f, 0x1.fe4a2a0000000p-8f, 0x1.1e0d760000000p-7f, 0x1.3de0a80000000p-7f, 0x1.61607e0000000p-7f, 0x1.81808a0000000p-7f, 0x1.a18b7e0000000p-7f, 0x1.c1147a0000000p-7f, 0x1.e0b4900000000p-7f, 0x1.00fb340000000p-6f},
    // per-tensor weight scale
    {0x1.00fb340000000p-6f},
    // END PYTORCH PRESETS
    // clang-format on
};

// The data of presets_reference.py, in the same double arithmetic, rounded
// to float32 as torch.tensor(..., dtype=float32) does.
std::vector<float> activations() {
  std::vector<float> x(20000);
  for (int i = 0; i < 20000; ++i) {
    double v = 3.0 * std::sin(0.37 * i) + 0.5 * std::sin(0.011 * i * std::sqrt(double(i)));
    if (i % 997 == 0) v += 12.0 + (i % 7);
    x[static_cast<std::size_t>(i)] = static_cast<float>(v);
  }
  return x;
}

std::vector<float> weights() {
  std::vector<float> w;
  for (int o = 0; o < 16; ++o)
    for (int k = 0; k < 24; ++k)
      w.push_back(static_cast<float>(std::sin(0.1 * o * k + o) * (o + 1) / 8.0));
  return w;
}

TEST(PyTorchPresetsAgainstTorch, HistogramActivationsAgreeWithinABin) {
  const std::vector<float> x = activations();
  for (const Activation& a : kTorch.activations) {
    const nn::QConfig qc =
        a.reduce_range ? nn::QConfig::pytorch_x86() : nn::QConfig::pytorch_onednn();
    sparq::HistogramObserver obs(qc.calibration.observer);
    obs.observe(x);
    EXPECT_EQ(obs.histogram().min, a.min);
    EXPECT_EQ(obs.histogram().max, a.max);
    const sparq::QParams qp = obs.qparams();
    std::printf("reduce_range %d: torch scale %.6f zp %d; sparq scale %.6f zp %d\n", a.reduce_range,
                a.scale, a.zero_point, qp.scale, qp.zero_point);
    EXPECT_NEAR(qp.scale, a.scale, 0.02 * a.scale) << a.reduce_range;
    EXPECT_LE(std::abs(qp.zero_point - a.zero_point), 2) << a.reduce_range;
  }
}

TEST(PyTorchPresetsAgainstTorch, WeightScalesAreBitIdentical) {
  const std::vector<float> w = weights();
  const nn::QuantizedTensor pc =
      nn::quantize_weights(w, 16, 24, nn::QConfig::pytorch_x86().quantization.weight_granularity);
  ASSERT_EQ(pc.scales.size(), 16u);
  for (std::size_t o = 0; o < 16; ++o) EXPECT_EQ(pc.scales[o], kTorch.per_channel[o]) << o;
  const nn::QuantizedTensor pt = nn::quantize_weights(
      w, 16, 24, nn::QConfig::pytorch_qnnpack().quantization.weight_granularity);
  ASSERT_EQ(pt.scales.size(), 1u);
  EXPECT_EQ(pt.scales[0], kTorch.per_tensor[0]);
}

}  // namespace
