// Graph operators beyond the Sequential layers (layers.hpp): residual Add,
// channel Concat, average pooling and the element-wise activations of the
// CNN families (ResNet, MobileNet). All FP32, NHWC like the layers.
//
// Every operator here follows the graph's operator concept (graph.hpp):
// a `kind` name, an `arity` (number of inputs; -1 for "one or more"),
// describe(), and forward() on one Tensor (arity 1) or on a span of inputs.
// Operators with parameters also have for_each_param() (names relative to
// the node, e.g. "weight") and init_parameters().
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "sparq/nn/tensor.hpp"

namespace sparq::nn {

/// y = a + b, element-wise; both inputs have the same shape.
struct Add {
  static constexpr const char* kind = "Add";
  static constexpr int arity = 2;
  std::string describe() const { return "Add"; }
  Tensor forward(std::span<const Tensor* const> inputs) const;
};

/// Concatenation along the last axis (the channel axis in NHWC); every
/// other dimension must agree.
struct Concat {
  static constexpr const char* kind = "Concat";
  static constexpr int arity = -1;
  std::string describe() const { return "Concat"; }
  Tensor forward(std::span<const Tensor* const> inputs) const;
};

/// NHWC average pooling (PyTorch's AvgPool2d): zero padding counted in the
/// divisor when count_include_pad (PyTorch's default), floor output size.
struct AvgPool2d {
  static constexpr const char* kind = "AvgPool2d";
  static constexpr int arity = 1;
  int64_t kernel_h = 2, kernel_w = 2;
  int64_t stride_h = 2, stride_w = 2;
  int64_t pad_h = 0, pad_w = 0;
  bool count_include_pad = true;

  AvgPool2d() = default;
  /// stride 0 means "equal to the kernel size" (PyTorch's default).
  explicit AvgPool2d(int64_t kernel_size, int64_t stride = 0, int64_t padding = 0);
  void validate() const;
  std::string describe() const;
  Tensor forward(const Tensor& x) const;
};

/// NHWC adaptive average pooling to out_h x out_w (PyTorch's
/// AdaptiveAvgPool2d: bin i covers [floor(i*H/out), ceil((i+1)*H/out))).
/// ResNet and MobileNet use (1, 1): the global average of each channel.
struct AdaptiveAvgPool2d {
  static constexpr const char* kind = "AdaptiveAvgPool2d";
  static constexpr int arity = 1;
  int64_t out_h = 1, out_w = 1;
  std::string describe() const;
  Tensor forward(const Tensor& x) const;
};

/// What the element-wise activations below share: one input, and a
/// description that is the kind alone (they have no parameters).
template <class Op>
struct ElementwiseActivation {
  static constexpr int arity = 1;
  std::string describe() const { return Op::kind; }
};

/// x * relu6(x + 3) / 6.
struct Hardswish : ElementwiseActivation<Hardswish> {
  static constexpr const char* kind = "Hardswish";
  Tensor forward(const Tensor& x) const;
};

/// x * sigmoid(x).
struct SiLU : ElementwiseActivation<SiLU> {
  static constexpr const char* kind = "SiLU";
  Tensor forward(const Tensor& x) const;
};

/// 1 / (1 + exp(-x)).
struct Sigmoid : ElementwiseActivation<Sigmoid> {
  static constexpr const char* kind = "Sigmoid";
  Tensor forward(const Tensor& x) const;
};

}  // namespace sparq::nn
