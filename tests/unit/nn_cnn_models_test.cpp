// torchvision builders (models.hpp): state_dict keys and sizes against
// torchvision 0.14's, forward shapes, and the PyTorch comparison that
// tests/pytorch/torchvision_reference.py drives (skipped unless it sets
// SPARQ_CNN_REFERENCE_DIR; see tests/pytorch/cnn_models.cmake).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "sparq/error.hpp"
#include "sparq/nn/io.hpp"
#include "sparq/nn/models.hpp"

namespace nn = sparq::nn;

namespace {

struct ModelFacts {
  const char* name;
  nn::Graph (*build)(int64_t num_classes);
  // From torchvision 0.14.1 (torch 1.13.1), printed once by
  //   m = torchvision.models.NAME(); sd = m.state_dict()
  //   len([k for k in sd if not k.endswith("num_batches_tracked")])
  //   sum(p.numel() for p in m.parameters())
  //   sum(b.numel() for k, b in m.named_buffers() if not k.endswith("num_batches_tracked"))
  // torchvision's published parameter counts (11,689,512 / 25,557,032 /
  // 3,504,872) exclude the BatchNorm running statistics; sparq's state_dict
  // and weight_bytes include them, as PyTorch's state_dict does.
  std::size_t state_dict_keys;
  int64_t parameters;
  int64_t batchnorm_buffers;
  std::vector<const char*> sample_keys;  // the naming rules most easily broken
};

const std::vector<ModelFacts>& all_models() {
  static const std::vector<ModelFacts> models = {
      {"resnet18",
       nn::resnet18,
       102,
       11'689'512,
       9'600,
       {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer1.1.bn2.running_mean",
        "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var",
        "layer4.1.conv2.weight", "fc.weight", "fc.bias"}},
      {"resnet50",
       nn::resnet50,
       267,
       25'557'032,
       53'120,
       {"conv1.weight", "layer1.0.downsample.0.weight", "layer1.0.conv3.weight",
        "layer3.5.bn3.bias", "layer4.2.conv2.weight", "fc.weight"}},
      {"mobilenet_v2",
       nn::mobilenet_v2,
       262,
       3'504'872,
       34'112,
       {"features.0.0.weight", "features.0.1.running_mean", "features.1.conv.0.0.weight",
        "features.1.conv.1.weight", "features.1.conv.2.bias", "features.2.conv.0.0.weight",
        "features.2.conv.1.0.weight", "features.2.conv.2.weight", "features.2.conv.3.running_var",
        "features.17.conv.3.weight", "features.18.0.weight", "features.18.1.bias",
        "classifier.1.weight", "classifier.1.bias"}},
  };
  return models;
}

class CnnModels : public testing::TestWithParam<std::size_t> {
 protected:
  const ModelFacts& facts() const { return all_models()[GetParam()]; }
};

std::string model_name(const testing::TestParamInfo<std::size_t>& info) {
  return all_models()[info.param].name;
}

}  // namespace

TEST_P(CnnModels, StateDictMatchesTorchvision) {
  const ModelFacts& m = facts();
  const nn::Graph g = m.build(1000);
  const nn::TensorMap sd = g.state_dict();
  EXPECT_EQ(sd.size(), m.state_dict_keys);
  int64_t elements = 0;
  for (const auto& [key, t] : sd) elements += t.numel();
  EXPECT_EQ(elements, m.parameters + m.batchnorm_buffers);
  EXPECT_EQ(g.weight_bytes(),
            static_cast<std::size_t>(m.parameters + m.batchnorm_buffers) * sizeof(float));
  for (const char* key : m.sample_keys) EXPECT_EQ(sd.count(key), 1u) << key;
  // Every key is "<module path>.<PyTorch parameter name>" (no
  // num_batches_tracked: load_state_dict ignores it).
  const std::set<std::string> suffixes = {"weight", "bias", "running_mean", "running_var"};
  for (const auto& [key, t] : sd)
    EXPECT_EQ(suffixes.count(key.substr(key.rfind('.') + 1)), 1u) << key;
}

TEST_P(CnnModels, ForwardGivesLogitsPerImage) {
  const ModelFacts& m = facts();
  nn::Graph g = m.build(10);
  g.init_parameters(7);
  // 32x32, the smallest image all three reduce to 1x1 without an empty map,
  // keeps this quick under the CI's sanitizer and qemu runs.
  nn::Tensor x({2, 32, 32, 3});
  for (std::size_t i = 0; i < x.data.size(); ++i)
    x.data[i] = std::sin(static_cast<float>(i) * 0.01f);
  const nn::Tensor y = g.forward(x);
  EXPECT_EQ(y.shape, (std::vector<int64_t>{2, 10}));
  for (float v : y.data) EXPECT_TRUE(std::isfinite(v));
  // Different images give different logits: the residual sums and the
  // classifier see the input, not only the biases.
  EXPECT_NE(std::vector<float>(y.data.begin(), y.data.begin() + 10),
            std::vector<float>(y.data.begin() + 10, y.data.end()));
  // The same input and seed give the same result.
  nn::Graph again = m.build(10);
  again.init_parameters(7);
  EXPECT_EQ(again.forward(x).data, y.data);
}

TEST_P(CnnModels, RejectsBadNumClasses) {
  EXPECT_THROW((void)facts().build(0), sparq::Error);
  try {
    (void)facts().build(-3);
    FAIL() << "no error";
  } catch (const sparq::Error& e) {
    EXPECT_NE(std::string(e.what()).find("num_classes (-3)"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Torchvision, CnnModels, testing::Values(0u, 1u, 2u), model_name);

TEST(CnnModelsStructure, ResNetBlocksAndShortcuts) {
  const nn::Graph g = nn::resnet18();
  // layer1 keeps 64 channels at stride 1: no downsample; layer2.0 halves the size.
  EXPECT_EQ(g.find("layer1.0.downsample.0"), -1);
  const auto& down = std::get<nn::Conv2d>(std::get<nn::Layer>(g.node("layer2.0.downsample.0").op));
  EXPECT_EQ(down.kernel_h, 1);
  EXPECT_EQ(down.stride_h, 2);
  EXPECT_EQ(g.node("layer2.0.add").inputs,
            (std::vector<std::string>{"layer2.0.bn2", "layer2.0.downsample.1"}));
  EXPECT_EQ(g.node("layer1.1.add").inputs,
            (std::vector<std::string>{"layer1.1.bn2", "layer1.0.relu"}));
  // ResNet-50 is v1.5: the stride sits on the 3x3 conv, not the first 1x1.
  const nn::Graph r50 = nn::resnet50();
  const auto& c1 = std::get<nn::Conv2d>(std::get<nn::Layer>(r50.node("layer3.0.conv1").op));
  const auto& c2 = std::get<nn::Conv2d>(std::get<nn::Layer>(r50.node("layer3.0.conv2").op));
  EXPECT_EQ(c1.stride_h, 1);
  EXPECT_EQ(c2.stride_h, 2);
  EXPECT_EQ(r50.outputs(), (std::vector<std::string>{"fc"}));
}

TEST(CnnModelsStructure, MobileNetResidualsAndDepthwise) {
  const nn::Graph g = nn::mobilenet_v2();
  // Residual only where stride is 1 and the channels stay: the second block
  // of each stage (features.3, 5, 6, ...), never features.1/2/4.
  int adds = 0;
  for (const nn::Node& n : g.nodes()) adds += std::holds_alternative<nn::Add>(n.op);
  EXPECT_EQ(adds, 10);  // 17 blocks minus the 7 first blocks of a stage
  EXPECT_EQ(g.find("features.1.add"), -1);
  EXPECT_EQ(g.find("features.2.add"), -1);
  EXPECT_EQ(g.node("features.3.add").inputs,
            (std::vector<std::string>{"features.3.conv.3", "features.2.conv.3"}));
  const auto& dw = std::get<nn::Conv2d>(std::get<nn::Layer>(g.node("features.2.conv.1.0").op));
  EXPECT_TRUE(dw.depthwise());
  EXPECT_EQ(dw.in_channels, 96);  // 16 channels expanded 6x
  EXPECT_EQ(dw.stride_h, 2);
  const auto& head = std::get<nn::Linear>(std::get<nn::Layer>(g.node("classifier.1").op));
  EXPECT_EQ(head.in_features, 1280);
}

// The PyTorch comparison: tests/pytorch/torchvision_reference.py writes, per
// model, NAME.safetensors (torchvision's state_dict, OIHW), NAME_input.safetensors
// ("input": NHWC) and NAME_output.safetensors ("output": torch's logits),
// then runs this test with SPARQ_CNN_REFERENCE_DIR set to that folder.
TEST_P(CnnModels, MatchesPyTorch) {
  const char* dir_env = std::getenv("SPARQ_CNN_REFERENCE_DIR");
  if (dir_env == nullptr)
    GTEST_SKIP() << "SPARQ_CNN_REFERENCE_DIR not set (run by cnn_models_pytorch)";
  const std::filesystem::path dir(dir_env);
  const std::string name = facts().name;
  const nn::TensorMap input = nn::load_safetensors(dir / (name + "_input.safetensors"));
  const nn::TensorMap output = nn::load_safetensors(dir / (name + "_output.safetensors"));
  const nn::Tensor& want = output.at("output");

  nn::Graph g = facts().build(want.shape.at(1));
  nn::load_weights(g, dir / (name + ".safetensors"));  // strict, OIHW
  const nn::Tensor got = g.forward(input.at("input"));
  ASSERT_EQ(got.shape, want.shape);

  // FP32 on both sides with different summation orders (sgemm's blocking
  // against PyTorch's CPU kernels) through 20-50 layers: measured 1.2e-6
  // (resnet18, resnet50) and 4.2e-6 (mobilenet_v2) of the logits' range on
  // torch 1.13. 1e-4 of the range leaves room for other BLAS builds and still
  // flags any wrong layer, layout or name (errors of the order of the range).
  const auto [lo, hi] = std::minmax_element(want.data.begin(), want.data.end());
  const double range = static_cast<double>(*hi) - static_cast<double>(*lo);
  ASSERT_GT(range, 0.0);
  double max_error = 0;
  for (std::size_t i = 0; i < want.data.size(); ++i)
    max_error = std::max(max_error, std::fabs(static_cast<double>(got.data[i]) - want.data[i]));
  RecordProperty("max_abs_error", std::to_string(max_error));
  std::printf("%s: max |sparq - torch| = %.3g, logits range %.3g, relative %.3g\n", name.c_str(),
              max_error, range, max_error / range);
  EXPECT_LE(max_error, 1e-4 * range);
}
