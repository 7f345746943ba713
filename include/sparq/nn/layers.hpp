// FP32 layers: the reference every quantized layer is compared against.
//
// Each layer is a small copyable struct holding its hyper-parameters and its
// parameters as Tensors, with a `forward` that maps a batched FP32 Tensor to
// a new one. The math is plain FP32 (matrix products through sparq's own
// FP32 GEMM, sparq/gemm/sgemm.hpp: per-ISA kernels, sparq::set_num_threads),
// so the results match PyTorch's eager FP32 up to summation order.
//
// Layouts (what a trainer must use when it sets the parameters):
//   Linear.weight    [out_features][in_features]      (PyTorch nn.Linear)
//   Linear.bias      [out_features] or empty
//   Conv2d.weight    [out_channels][kernel_h][kernel_w][in_channels / groups]
//                    (OHWI; PyTorch stores OIHW: convert with oihw_to_ohwi)
//   Conv2d.bias      [out_channels] or empty
//   BatchNorm.*      [num_features] each
// Activations: Linear takes [batch][in_features] (any leading dims: the last
// axis is the feature axis); Conv2d and MaxPool2d take NHWC
// [batch][height][width][channels]; BatchNorm normalises the LAST axis (the
// channel axis in NHWC, the feature axis in [batch][features]), so one struct
// serves as both BatchNorm1d and BatchNorm2d. Flatten maps [batch][...] to
// [batch][product] in row-major (H, W, C) order - NOT PyTorch's (C, H, W)
// order: a Linear after a Flatten imported from PyTorch needs its input
// columns permuted.
//
// Every constructor validates its arguments and throws sparq::Error naming the
// bad one. Parameters start at zero; Sequential::init_parameters fills them
// the way PyTorch's default initialisation does.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <variant>

#include "sparq/nn/tensor.hpp"

namespace sparq::nn {

/// An activation fused into the output stage of the layer before it.
enum class Activation : uint8_t { none, relu, relu6 };
const char* activation_name(Activation a) noexcept;  // "none", "relu", "relu6"

/// y = x W^T + b.
struct Linear {
  int64_t in_features = 0;
  int64_t out_features = 0;
  Tensor weight;  ///< [out_features][in_features]
  Tensor bias;    ///< [out_features], or empty for a layer without bias

  Linear() = default;
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  bool has_bias() const noexcept { return !bias.empty(); }
  Tensor forward(const Tensor& x) const;
};

/// Hyper-parameters of a 2-D convolution (shared by Conv2d and QConv2d).
struct Conv2dOptions {
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 2> padding{0, 0};  ///< zero padding on each side (h, w)
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;  ///< 1, in_channels (depthwise) or any common divisor
  bool bias = true;
};

struct Conv2dGeometry {
  int64_t in_channels = 0, out_channels = 0;
  int64_t kernel_h = 0, kernel_w = 0;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;

  /// Throws sparq::Error unless every field is in range (sizes >= 1,
  /// padding >= 0, groups divides both channel counts).
  void validate() const;
  /// Output height for an input height (throws if the kernel does not fit).
  int64_t out_h(int64_t in_h) const;
  int64_t out_w(int64_t in_w) const;
  bool depthwise() const noexcept { return groups > 1 && groups == in_channels; }
  /// Reduction length of one output: kernel_h * kernel_w * in_channels / groups.
  int64_t patch_size() const noexcept { return kernel_h * kernel_w * (in_channels / groups); }
};

/// NHWC 2-D convolution (cross-correlation, as PyTorch's Conv2d).
struct Conv2d : Conv2dGeometry {
  Tensor weight;  ///< [out_channels][kernel_h][kernel_w][in_channels / groups]
  Tensor bias;    ///< [out_channels], or empty

  Conv2d() = default;
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size,
         const Conv2dOptions& options = {});
  Conv2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel_hw,
         const Conv2dOptions& options = {});
  bool has_bias() const noexcept { return !bias.empty(); }
  Tensor forward(const Tensor& x) const;
};

/// Inference-mode batch normalisation of the last axis:
///   y = (x - running_mean) / sqrt(running_var + eps) * weight + bias
struct BatchNorm {
  int64_t num_features = 0;
  float eps = 1e-5f;
  Tensor weight;        ///< gamma, starts at 1
  Tensor bias;          ///< beta, starts at 0
  Tensor running_mean;  ///< starts at 0
  Tensor running_var;   ///< starts at 1

  BatchNorm() = default;
  explicit BatchNorm(int64_t num_features, float eps = 1e-5f);
  Tensor forward(const Tensor& x) const;
};
using BatchNorm1d = BatchNorm;
using BatchNorm2d = BatchNorm;

struct ReLU {
  Tensor forward(const Tensor& x) const;
};
struct ReLU6 {
  Tensor forward(const Tensor& x) const;
};

/// NHWC max pooling; padded positions never win (they are -inf).
struct MaxPool2d {
  int64_t kernel_h = 2, kernel_w = 2;
  int64_t stride_h = 2, stride_w = 2;
  int64_t pad_h = 0, pad_w = 0;

  MaxPool2d() = default;
  /// stride 0 means "equal to the kernel size" (PyTorch's default).
  explicit MaxPool2d(int64_t kernel_size, int64_t stride = 0, int64_t padding = 0);
  void validate() const;
  int64_t out_h(int64_t in_h) const;
  int64_t out_w(int64_t in_w) const;
  Tensor forward(const Tensor& x) const;
};

/// [batch][d1][d2]... -> [batch][d1 * d2 * ...].
struct Flatten {
  Tensor forward(const Tensor& x) const;
};

/// One layer of a Sequential.
using Layer = std::variant<Linear, Conv2d, BatchNorm, ReLU, ReLU6, MaxPool2d, Flatten>;

/// "Linear", "Conv2d", "BatchNorm", "ReLU", "ReLU6", "MaxPool2d", "Flatten".
const char* layer_kind(const Layer& layer) noexcept;
/// "Linear(784 -> 256)", "Conv2d(1 -> 8, k3x3, s1, p1)", ...
std::string describe(const Layer& layer);
Tensor forward(const Layer& layer, const Tensor& x);

/// PyTorch conv weight [O][I][H][W] -> sparq's [O][H][W][I].
Tensor oihw_to_ohwi(const Tensor& w);

}  // namespace sparq::nn
