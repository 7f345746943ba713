// torchvision's ResNet-18/50 and MobileNetV2 as Graphs (models.hpp). Node
// names are torchvision's module paths, so the state_dict keys are
// torchvision's ("layer1.0.downsample.1.running_var", "features.3.conv.1.0.weight",
// "classifier.1.bias"). Parameter-free nodes that torchvision reuses or runs
// as functions get names of their own ("layer1.0.relu1", "layer1.0.add",
// "avgpool", "flatten"). Structure checked against torchvision 0.14's
// models/resnet.py and models/mobilenetv2.py.
#include <array>
#include <string>

#include "sparq/error.hpp"
#include "sparq/nn/models.hpp"

namespace sparq::nn {

using sparq::detail::fail;

namespace {

void check_num_classes(int64_t num_classes, const char* model) {
  if (num_classes < 1) fail("{}: num_classes ({}) must be >= 1", model, num_classes);
}

struct ConvBnSpec {
  int64_t in_channels = 0, out_channels = 0, kernel = 1, stride = 1, groups = 1;
  Activation activation = Activation::none;
};

// Adds torchvision's conv -> BatchNorm (-> ReLU/ReLU6) unit: a bias-free
// convolution with "same" padding (kernel - 1) / 2, as conv1x1/conv3x3, the
// ResNet stem and Conv2dNormActivation use. Returns the last node's name.
std::string add_conv_bn(Graph& g, const std::string& input, const std::string& conv_name,
                        const std::string& bn_name, const std::string& activation_name,
                        const ConvBnSpec& s) {
  const int64_t pad = (s.kernel - 1) / 2;
  g.add(conv_name,
        Conv2d(s.in_channels, s.out_channels, s.kernel,
               {.stride = {s.stride, s.stride},
                .padding = {pad, pad},
                .groups = s.groups,
                .bias = false}),
        {input});
  std::string last = g.add(bn_name, BatchNorm2d(s.out_channels));
  if (s.activation == Activation::relu) last = g.add(activation_name, ReLU{});
  if (s.activation == Activation::relu6) last = g.add(activation_name, ReLU6{});
  return last;
}

// Conv2dNormActivation(in, out, kernel, stride, groups) named "<prefix>.0",
// "<prefix>.1", "<prefix>.2" (MobileNetV2's features).
std::string add_conv_norm_activation(Graph& g, const std::string& input, const std::string& prefix,
                                     const ConvBnSpec& s) {
  return add_conv_bn(g, input, prefix + ".0", prefix + ".1", prefix + ".2", s);
}

// The global average pool, flatten and the final Linear every model here ends with.
void add_classifier_head(Graph& g, const std::string& linear_name, int64_t features,
                         int64_t num_classes) {
  g.add("avgpool", AdaptiveAvgPool2d{});
  // [batch][1][1][C] flattens to [batch][C] in the same order as PyTorch's
  // NCHW flatten (a 1x1 image has no H/W order to differ in).
  g.add("flatten", Flatten{});
  g.add(linear_name, Linear(features, num_classes));
}

// --------------------------------------------------------------- ResNet
enum class ResNetBlock { basic, bottleneck };

// One BasicBlock (two 3x3 convs) or Bottleneck (1x1, 3x3 with the stride:
// v1.5, 1x1 expanding 4x) named "layerL.B.*". The shortcut is a strided 1x1
// conv + BatchNorm ("downsample.0/.1") when the shape changes; the sum is
// followed by ReLU. Returns the block's output name.
std::string add_resnet_block(Graph& g, const std::string& input, const std::string& prefix,
                             ResNetBlock kind, int64_t in_channels, int64_t planes,
                             int64_t stride) {
  const int64_t expansion = kind == ResNetBlock::basic ? 1 : 4;
  const int64_t out_channels = planes * expansion;
  std::string out;
  if (kind == ResNetBlock::basic) {
    out = add_conv_bn(g, input, prefix + ".conv1", prefix + ".bn1", prefix + ".relu1",
                      {in_channels, planes, 3, stride, 1, Activation::relu});
    out = add_conv_bn(g, out, prefix + ".conv2", prefix + ".bn2", "",
                      {planes, planes, 3, 1, 1, Activation::none});
  } else {
    out = add_conv_bn(g, input, prefix + ".conv1", prefix + ".bn1", prefix + ".relu1",
                      {in_channels, planes, 1, 1, 1, Activation::relu});
    out = add_conv_bn(g, out, prefix + ".conv2", prefix + ".bn2", prefix + ".relu2",
                      {planes, planes, 3, stride, 1, Activation::relu});
    out = add_conv_bn(g, out, prefix + ".conv3", prefix + ".bn3", "",
                      {planes, out_channels, 1, 1, 1, Activation::none});
  }
  std::string identity = input;
  if (stride != 1 || in_channels != out_channels) {
    identity = add_conv_bn(g, input, prefix + ".downsample.0", prefix + ".downsample.1", "",
                           {in_channels, out_channels, 1, stride, 1, Activation::none});
  }
  g.add(prefix + ".add", Add{}, {out, identity});
  return g.add(prefix + ".relu", ReLU{});
}

Graph resnet(ResNetBlock kind, const std::array<int64_t, 4>& blocks_per_stage, int64_t num_classes,
             const char* model) {
  check_num_classes(num_classes, model);
  Graph g;
  add_conv_bn(g, "input", "conv1", "bn1", "relu", {3, 64, 7, 2, 1, Activation::relu});
  std::string last = g.add("maxpool", MaxPool2d(3, 2, 1));
  const int64_t expansion = kind == ResNetBlock::basic ? 1 : 4;
  int64_t channels = 64;
  for (std::size_t stage = 0; stage < blocks_per_stage.size(); ++stage) {
    const int64_t planes = int64_t{64} << stage;
    for (int64_t block = 0; block < blocks_per_stage[stage]; ++block) {
      const int64_t stride = stage > 0 && block == 0 ? 2 : 1;
      const std::string prefix = "layer" + std::to_string(stage + 1) + "." + std::to_string(block);
      last = add_resnet_block(g, last, prefix, kind, channels, planes, stride);
      channels = planes * expansion;
    }
  }
  add_classifier_head(g, "fc", channels, num_classes);
  return g;
}

}  // namespace

Graph resnet18(int64_t num_classes) {
  return resnet(ResNetBlock::basic, {2, 2, 2, 2}, num_classes, "resnet18");
}

Graph resnet50(int64_t num_classes) {
  return resnet(ResNetBlock::bottleneck, {3, 4, 6, 3}, num_classes, "resnet50");
}

// ---------------------------------------------------------- MobileNetV2
Graph mobilenet_v2(int64_t num_classes) {
  check_num_classes(num_classes, "mobilenet_v2");
  // torchvision's inverted_residual_setting: expansion t, output channels c,
  // repeats n, stride of the first repeat s. At width 1.0 _make_divisible
  // leaves every channel count as it is.
  struct Stage {
    int64_t expansion, channels, repeats, stride;
  };
  constexpr Stage stages[] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                              {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  constexpr int64_t stem_channels = 32, last_channels = 1280;

  Graph g;
  std::string last = add_conv_norm_activation(g, "input", "features.0",
                                              {3, stem_channels, 3, 2, 1, Activation::relu6});
  int64_t channels = stem_channels;
  int64_t feature = 1;
  for (const Stage& stage : stages) {
    for (int64_t i = 0; i < stage.repeats; ++i, ++feature) {
      // InvertedResidual "features.N": an optional 1x1 expansion, the 3x3
      // depthwise conv with the stride, then a linear 1x1 projection; its
      // Sequential "conv" numbers these from 0, so without the expansion the
      // depthwise unit is conv.0 and the projection conv.1 / conv.2.
      const std::string prefix = "features." + std::to_string(feature) + ".conv";
      const int64_t stride = i == 0 ? stage.stride : 1;
      const int64_t hidden = channels * stage.expansion;
      const std::string block_input = last;
      int64_t index = 0;
      if (stage.expansion != 1) {
        last = add_conv_norm_activation(g, last, prefix + "." + std::to_string(index++),
                                        {channels, hidden, 1, 1, 1, Activation::relu6});
      }
      last = add_conv_norm_activation(g, last, prefix + "." + std::to_string(index++),
                                      {hidden, hidden, 3, stride, hidden, Activation::relu6});
      last = add_conv_bn(g, last, prefix + "." + std::to_string(index),
                         prefix + "." + std::to_string(index + 1), "",
                         {hidden, stage.channels, 1, 1, 1, Activation::none});
      if (stride == 1 && channels == stage.channels) {
        last = g.add("features." + std::to_string(feature) + ".add", Add{}, {last, block_input});
      }
      channels = stage.channels;
    }
  }
  add_conv_norm_activation(g, last, "features." + std::to_string(feature),
                           {channels, last_channels, 1, 1, 1, Activation::relu6});
  // classifier.0 is Dropout: the identity at inference.
  add_classifier_head(g, "classifier.1", last_channels, num_classes);
  return g;
}

}  // namespace sparq::nn
