// A compact FP32 trainer for the demo's two small networks.
//
// sparq itself is an inference library: its nn layers have no backward pass.
// The demo still has to start from a model trained in C++ (issue 9), so this
// file holds just enough of a training framework for an MLP and a small CNN:
// Linear, Conv2d (square kernel, stride 1, zero padding), BatchNorm (2d and
// 1d share the math), ReLU, MaxPool2d (2x2, stride 2), Flatten, softmax
// cross-entropy, Adam with a cosine learning-rate schedule, plus the hooks
// quantization-aware training and 2:4 fine-tuning need:
//   - QatHooks: fake-quantize each Linear/Conv2d input and weight in the
//     forward pass; the backward pass uses the straight-through estimator
//     (gradients pass unchanged through the rounding and are zero where an
//     activation was clamped), as in PyTorch's FakeQuantize;
//   - Param::mask: a fixed 0/1 mask (2:4 pattern) applied to the weight
//     after every optimizer step and to its gradient.
//
// Layout matches sparq::nn so weights copy across without reshuffling:
// activations are row-major matrices; for conv layers one row per pixel
// (batch x height x width rows, channels columns: NHWC), for dense layers
// one row per sample. Linear weights are [out][in]; Conv2d weights are
// [out][kh][kw][in]. Flatten of an NHWC map is therefore a free reshape and
// orders features (h, w, c).
//
// Matrix products go through Eigen (and its OpenMP threads when the build
// has OpenMP), which keeps one MLP epoch over 60,000 images to seconds.
#pragma once

#include <Eigen/Core>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "idx.hpp"

namespace fashion {

using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// A named parameter (or buffer, when trainable is false) and its Adam state.
struct Param {
  std::string name;            ///< PyTorch-style suffix: "weight", "bias", "running_mean", ...
  std::vector<int64_t> shape;  ///< logical shape for the state_dict (value is 2-d)
  Mat value, grad, adam_m, adam_v;
  Mat mask;  ///< empty, or value's shape: fixed 0/1 sparsity mask
  bool trainable = true;
};

/// Fake-quantization used by QAT (filled in by the caller with sparq's
/// fake_quantize, so training simulates exactly the rounding sparq applies).
struct QatHooks {
  /// Fake-quantizes a weight matrix [out][k] per output channel, in place.
  std::function<void(Mat& w)> weights;
  /// Fake-quantizes activations in place with the asymmetric 8-bit grid of
  /// the range [lo, hi].
  std::function<void(Mat& x, float lo, float hi)> activations;
};

/// Spatial shape of one sample's NHWC feature map.
struct Shape3 {
  int64_t h = 0, w = 0, c = 0;
  int64_t size() const { return h * w * c; }
};

class Layer {
 public:
  virtual ~Layer() = default;
  /// "Linear", "Conv2d", "BatchNorm2d", "BatchNorm1d", "ReLU", "MaxPool2d", "Flatten".
  virtual std::string kind() const = 0;
  virtual Mat forward(const Mat& x, bool train) = 0;
  /// Given dL/dy of the last forward(train=true), accumulates parameter
  /// gradients and returns dL/dx.
  virtual Mat backward(const Mat& dy) = 0;
  virtual std::vector<Param*> params() { return {}; }
  virtual std::unique_ptr<Layer> clone() const = 0;
};

/// Linear and Conv2d share weight handling (bias, QAT, masks).
class WeightLayer : public Layer {
 public:
  Param weight, bias;
  std::shared_ptr<const QatHooks> qat;  ///< null: plain FP32
  /// Moving-average input range observed during QAT (PyTorch's
  /// MovingAverageMinMaxObserver, averaging constant 0.01); seeded by the
  /// caller from a calibration pass.
  float act_lo = 0.0f, act_hi = 0.0f;
  bool act_range_set = false;
  std::vector<Param*> params() override { return {&weight, &bias}; }
  int64_t out_features() const { return weight.value.rows(); }

 protected:
  /// Input after (fake-)quantization and the STE pass-through mask.
  Mat prepare_input(const Mat& x, bool train);
  /// Weight used by the forward pass (fake-quantized under QAT).
  const Mat& effective_weight();
  /// x W^T + b (x: one row per output position).
  Mat affine(const Mat& x);
  /// Accumulates dW, db of affine(x) and returns dL/dx.
  Mat affine_backward(const Mat& dy, const Mat& x);
  Mat input_pass_;  ///< 1 where the STE lets the gradient through (QAT only)
  Mat wq_;
};

class Linear final : public WeightLayer {
 public:
  Linear(int64_t in, int64_t out, std::mt19937& rng);
  std::unique_ptr<Layer> clone() const override { return std::make_unique<Linear>(*this); }
  std::string kind() const override { return "Linear"; }
  Mat forward(const Mat& x, bool train) override;
  Mat backward(const Mat& dy) override;

 private:
  Mat x_;
};

class Conv2d final : public WeightLayer {
 public:
  Conv2d(Shape3 in, int64_t out_channels, int64_t kernel, int64_t padding, std::mt19937& rng);
  std::unique_ptr<Layer> clone() const override { return std::make_unique<Conv2d>(*this); }
  std::string kind() const override { return "Conv2d"; }
  Mat forward(const Mat& x, bool train) override;
  Mat backward(const Mat& dy) override;
  Shape3 in_shape() const { return in_; }
  Shape3 out_shape() const { return {in_.h, in_.w, out_features()}; }
  int64_t kernel() const { return k_; }
  int64_t padding() const { return pad_; }

 private:
  Shape3 in_;
  int64_t k_, pad_;
  Mat cols_;
};

class BatchNorm final : public Layer {
 public:
  BatchNorm(int64_t channels, bool two_d);
  std::unique_ptr<Layer> clone() const override { return std::make_unique<BatchNorm>(*this); }
  std::string kind() const override { return two_d_ ? "BatchNorm2d" : "BatchNorm1d"; }
  Mat forward(const Mat& x, bool train) override;
  Mat backward(const Mat& dy) override;
  std::vector<Param*> params() override { return {&gamma, &beta, &running_mean, &running_var}; }
  Param gamma, beta, running_mean, running_var;
  float eps = 1e-5f;
  float momentum = 0.1f;

 private:
  bool two_d_;
  Mat xhat_;
  Eigen::RowVectorXf inv_std_;
};

class ReLU final : public Layer {
 public:
  std::unique_ptr<Layer> clone() const override { return std::make_unique<ReLU>(*this); }
  std::string kind() const override { return "ReLU"; }
  Mat forward(const Mat& x, bool train) override;
  Mat backward(const Mat& dy) override;

 private:
  Mat pass_;
};

class MaxPool2d final : public Layer {
 public:
  explicit MaxPool2d(Shape3 in);  ///< 2x2 window, stride 2
  std::unique_ptr<Layer> clone() const override { return std::make_unique<MaxPool2d>(*this); }
  std::string kind() const override { return "MaxPool2d"; }
  Mat forward(const Mat& x, bool train) override;
  Mat backward(const Mat& dy) override;
  Shape3 out_shape() const { return {in_.h / 2, in_.w / 2, in_.c}; }

 private:
  Shape3 in_;
  std::vector<int64_t> argmax_;
  int64_t in_rows_ = 0;
};

class Flatten final : public Layer {
 public:
  explicit Flatten(Shape3 in) : in_(in) {}
  std::unique_ptr<Layer> clone() const override { return std::make_unique<Flatten>(*this); }
  std::string kind() const override { return "Flatten"; }
  Mat forward(const Mat& x, bool train) override;
  Mat backward(const Mat& dy) override;

 private:
  Shape3 in_;
};

/// A state_dict entry.
struct NamedTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};
using StateDict = std::map<std::string, NamedTensor>;

/// What train() and accuracy() need of a network: Net (a chain) and
/// GraphNet (train_graph.hpp: residual and depthwise-separable CNNs).
class Trainable {
 public:
  virtual ~Trainable() = default;
  /// Shown in error messages.
  virtual const std::string& model_name() const = 0;
  /// x: [batch][pixels] (one image per row); returns [batch][classes].
  virtual Mat forward(const Mat& x, bool train) = 0;
  /// Given dL/dlogits of the last forward(train=true), accumulates every
  /// parameter's gradient.
  virtual void backward(const Mat& dlogits) = 0;
  virtual std::vector<Param*> params() = 0;

 protected:
  Trainable() = default;
  Trainable(const Trainable&) = default;
  Trainable(Trainable&&) = default;
  Trainable& operator=(const Trainable&) = default;
  Trainable& operator=(Trainable&&) = default;
};

/// A sequence of layers, named like torch.nn.Sequential ("<index>.<param>").
class Net final : public Trainable {
 public:
  std::string name;
  Shape3 input;  ///< one sample; Conv nets get rows = pixels, else one row per sample
  std::vector<std::unique_ptr<Layer>> layers;

  const std::string& model_name() const override { return name; }
  /// x: [batch][input.size()] (one image per row).
  Mat forward(const Mat& x, bool train) override;
  void backward(const Mat& dlogits) override;
  std::vector<Param*> params() override;
  StateDict state_dict() const;
  void load_state_dict(const StateDict& sd);
  /// Folds every BatchNorm that follows a Linear/Conv2d into it and removes
  /// it (used before QAT, which trains the folded weights).
  void fold_batchnorm();
  /// Copies layers and parameters (QAT hooks and masks included).
  Net clone() const;
};

struct TrainConfig {
  int epochs = 1;
  int64_t batch = 128;
  float lr = 1e-3f;
  float lr_final = 0.0f;  ///< cosine schedule from lr to lr_final over all steps
  uint64_t seed = 1;
  std::string label;  ///< shown in the progress output
};

/// Trains with Adam and softmax cross-entropy; returns the final epoch's
/// mean training loss. Progress goes to stderr (a bar when it is a TTY, one
/// line per epoch otherwise).
double train(Trainable& net, const Dataset& data, const TrainConfig& config);

/// Top-1 accuracy (0..1) of the FP32 (or QAT fake-quant) net in eval mode.
double accuracy(Trainable& net, const Dataset& data);

/// Folds an inference-mode BatchNorm that follows `layer` into its weight
/// and bias (Net::fold_batchnorm and GraphNet::fold_batchnorm).
void fold_batchnorm_into(WeightLayer& layer, const BatchNorm& bn);

/// He-uniform initialisation (bound sqrt(6 / fan_in)).
void he_uniform(Mat& w, int64_t fan_in, std::mt19937& rng);
/// A zero-valued parameter of `rows` x `cols` with a state_dict shape.
Param make_param(std::string name, std::vector<int64_t> shape, int64_t rows, int64_t cols,
                 bool trainable = true);

/// Images [first, first+n) as a [n][pixels] matrix scaled to [0, 1].
Mat images_as_matrix(const Dataset& data, int64_t first, int64_t n);
/// Same for an arbitrary list of indices.
Mat gather_images(const Dataset& data, const std::vector<int64_t>& indices);

}  // namespace fashion
