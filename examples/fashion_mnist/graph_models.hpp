// The demo's graph-shaped networks (issue 14, "Accuracy on real data"): a
// residual CNN and a depthwise-separable CNN, trained with train_graph.hpp,
// exported as a PyTorch-style safetensors state_dict (OIHW conv weights,
// torchvision-like names) and loaded by name into a sparq nn::Graph, then
// quantized with the graph workflow (sparq/nn/graph_quantized.hpp).
//
//   ResNet (28x28x1 in):
//     conv1 3x3/2 (16) bn1 relu                                   -> 14x14x16
//     layer1.0: conv1 3x3 bn1 relu1 conv2 3x3 bn2 + identity, relu2 -> 14x14x16
//     layer2.0: conv1 3x3/2 ... bn2 + downsample (1x1/2 conv, BN)   ->  7x7x32
//     layer3.0: conv1 3x3/2 ... bn2 + downsample (1x1/2 conv, BN)   ->  4x4x64
//     avgpool (global) flatten fc (64 -> 10)
//   DSCNN (MobileNet-style):
//     conv1 3x3/2 (16) bn1 relu                                   -> 14x14x16
//     blocks.i: depthwise 3x3/s bn1 relu1, pointwise 1x1 bn2 relu2
//       (s = 1, 2, 2; channels 16 -> 32 -> 64 -> 128)              ->  4x4x128
//     avgpool (global) flatten fc (128 -> 10)
// The first convolution downsamples at once so that training both on one
// core stays within the demo's time budget.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "bridge.hpp"
#include "train_graph.hpp"

namespace fashion {

GraphNet make_resnet(uint64_t seed, int64_t c1 = 16, int64_t c2 = 32, int64_t c3 = 64);
GraphNet make_dscnn(uint64_t seed);

/// An empty sparq graph with the trainer net's nodes, name for name (input
/// "input"); GlobalAvgPool becomes AdaptiveAvgPool2d, Add nodes nn::Add.
nn::Graph sparq_graph(const GraphNet& net);

/// Saves net's weights as a PyTorch state_dict would be saved (conv weights
/// [out][in/groups][kh][kw]) and loads them into sparq_graph(net) with
/// nn::load_weights, strict: every parameter is matched by name.
nn::Graph export_and_import_graph(const GraphNet& net, const std::filesystem::path& file);

/// One row of the demo table, before it is evaluated and timed.
struct GraphVariant {
  std::string variant;  ///< "FP32", "dynamic INT8", ...
  Forward forward;      ///< owns its model
  std::size_t bytes;    ///< weight bytes as the kernels read them
  std::string file;     ///< saved file, relative to the output directory
  std::string note;
};

struct GraphPlan {
  int epochs = 1;      ///< FP32 training
  int qat_epochs = 1;  ///< fake-quant fine-tuning
  float lr = 2e-3f;
  uint64_t seed = 1;
};

/// Trains `net` in FP32, then returns its variants, FP32 first: FP32 (the
/// safetensors import), dynamic INT8, static INT8 per tensor and per channel
/// (the graph workflow's defaults otherwise: automatic calibration on the
/// `calib` training images), and QAT (BatchNorm folded, fake-quant
/// fine-tuning, then static per-channel INT8). Files go to `out`.
std::vector<GraphVariant> graph_variants(GraphNet& net, const Dataset& train, const Dataset& test,
                                         const std::vector<int64_t>& calib,
                                         const std::filesystem::path& out, const GraphPlan& plan);

}  // namespace fashion
