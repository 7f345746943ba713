// sparq::nn::Tensor: the small value type that carries FP32 activations and
// parameters between the layers of a model.
//
// A Tensor is a shape and a dense row-major float buffer, nothing more: no
// strides, no views, no device. Activations are batched:
//   - MLPs:       [batch][features]
//   - conv nets:  [batch][height][width][channels]   (NHWC)
// Parameters use the layouts documented on each layer (layers.hpp).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace sparq::nn {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;

  Tensor() = default;
  /// A zero-filled tensor of the given shape. Throws sparq::Error for a
  /// negative dimension or an element count that overflows int64.
  explicit Tensor(std::vector<int64_t> shape);
  /// A tensor holding `data`; throws sparq::Error unless data.size() equals
  /// the product of the dimensions.
  Tensor(std::vector<int64_t> shape, std::vector<float> data);

  /// Product of the dimensions (1 for rank 0 with data, 0 for an empty tensor).
  int64_t numel() const noexcept { return static_cast<int64_t>(data.size()); }
  int rank() const noexcept { return static_cast<int>(shape.size()); }
  /// Dimension i; negative i counts from the end. Throws sparq::Error when out of range.
  int64_t dim(int i) const;
  bool empty() const noexcept { return data.empty(); }

  friend bool operator==(const Tensor&, const Tensor&) = default;
};

/// A read-only view of a caller's FP32 tensor: a data pointer and a shape,
/// no copy. It is the input of the serving path (QuantizedModel::forward
/// with a Workspace): a batch already in the caller's memory is read in
/// place. The caller keeps the data and the shape alive while the view is
/// in use; a Tensor converts implicitly.
struct TensorView {
  const float* data = nullptr;
  std::span<const int64_t> shape;

  TensorView() = default;
  TensorView(const float* values, std::span<const int64_t> dims) : data(values), shape(dims) {}
  TensorView(const Tensor& t) : data(t.data.data()), shape(t.shape) {}  // NOLINT(*-explicit-*)

  /// Product of the dimensions; throws sparq::Error for a negative
  /// dimension or an overflow of int64.
  int64_t numel() const;
};

/// Product of `shape`, checked: throws sparq::Error naming `what` for a
/// negative dimension or an overflow of int64.
int64_t checked_numel(std::span<const int64_t> shape, const char* what = "shape");

/// "[2, 28, 28, 1]".
std::string shape_to_string(std::span<const int64_t> shape);

}  // namespace sparq::nn
