// Graph-shaped networks for the trainer (train.hpp): what a residual CNN and
// a depthwise-separable (MobileNet-style) CNN need beyond the Sequential Net.
//
//   - GroupedConv2d: any stride and zero padding, and groups (1, a common
//     divisor, or in_channels: depthwise), with QAT and the layout of
//     train.hpp's Conv2d (weights [out][kh][kw][in/groups], NHWC rows);
//   - GlobalAvgPool: the mean over every pixel of a channel
//     (AdaptiveAvgPool2d(1)), one row per sample out;
//   - GraphNet: named nodes with explicit inputs, among them residual Add
//     nodes (dL/dy goes unchanged to both inputs) and nodes read by several
//     others (their gradients are summed), trained by train.hpp's train().
//
// The other layers (Linear, BatchNorm, ReLU, Flatten) are train.hpp's.
// Node names are the state_dict prefixes of the sparq nn::Graph the demo
// builds from a GraphNet (graph_models.hpp), PyTorch-style
// ("layer2.0.downsample.0.weight").
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "train.hpp"

namespace fashion {

class GroupedConv2d final : public WeightLayer {
 public:
  /// Output size per axis: (in + 2 * padding - kernel) / stride + 1.
  /// Throws sparq::Error unless kernel, stride >= 1, padding >= 0, groups
  /// divides in.c and out_channels, and the output is at least 1x1.
  GroupedConv2d(Shape3 in, int64_t out_channels, int64_t kernel, int64_t stride, int64_t padding,
                int64_t groups, std::mt19937& rng);
  std::unique_ptr<Layer> clone() const override { return std::make_unique<GroupedConv2d>(*this); }
  std::string kind() const override { return "Conv2d"; }
  Mat forward(const Mat& x, bool train) override;
  Mat backward(const Mat& dy) override;
  Shape3 in_shape() const { return in_; }
  Shape3 out_shape() const { return out_; }
  int64_t kernel() const { return k_; }
  int64_t stride() const { return stride_; }
  int64_t padding() const { return pad_; }
  int64_t groups() const { return groups_; }

 private:
  Shape3 in_, out_;
  int64_t k_, stride_, pad_, groups_;
  /// im2col of each group's input channels: one row per output pixel,
  /// columns (kh, kw, c) like the weight rows of that group.
  std::vector<Mat> cols_;
};

/// Mean over height and width: [batch * h * w][c] -> [batch][c].
class GlobalAvgPool final : public Layer {
 public:
  explicit GlobalAvgPool(Shape3 in) : in_(in) {}
  std::unique_ptr<Layer> clone() const override { return std::make_unique<GlobalAvgPool>(*this); }
  std::string kind() const override { return "AdaptiveAvgPool2d"; }
  Mat forward(const Mat& x, bool train) override;
  Mat backward(const Mat& dy) override;
  Shape3 in_shape() const { return in_; }

 private:
  Shape3 in_;
};

class GraphNet final : public Trainable {
 public:
  /// The graph's input (the image), as a node index in `inputs`.
  static constexpr int kImage = -1;

  struct Node {
    std::string name;              ///< state_dict prefix, e.g. "layer1.0.conv1"
    std::unique_ptr<Layer> layer;  ///< null: residual Add of the two inputs
    std::vector<int> inputs;       ///< node indices, or kImage
  };

  std::string name;
  Shape3 input;  ///< one sample (28x28x1); the first nodes get NHWC pixel rows
  std::vector<Node> nodes;

  /// Appends a node reading `from` (default: the node added last, or the
  /// image for the first) and returns its index.
  int add(std::string node_name, std::unique_ptr<Layer> layer, int from = -2);
  /// Appends a residual Add of nodes a and b (same shape) and returns its index.
  int add_sum(std::string node_name, int a, int b);

  const std::string& model_name() const override { return name; }
  /// x: [batch][input.size()]; returns the last node's output.
  Mat forward(const Mat& x, bool train) override;
  void backward(const Mat& dlogits) override;
  std::vector<Param*> params() override;
  /// "<node>.<param>" -> value (conv weights [out][kh][kw][in/groups]).
  StateDict state_dict() const;
  /// Folds every BatchNorm node whose input is a weight layer read by
  /// nothing else into that layer and removes it (before QAT, which trains
  /// the folded weights, as sparq's fold_batchnorm(Graph&) does).
  void fold_batchnorm();
  /// Every Linear / Conv2d layer.
  std::vector<WeightLayer*> weight_layers();
  GraphNet clone() const;
};

}  // namespace fashion
