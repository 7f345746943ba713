// Sequential: an FP32 model as a list of layers, PyTorch style.
//
//   nn::Sequential model;
//   model.add(nn::Conv2d(1, 8, 3, {.padding = {1, 1}}))
//        .add(nn::BatchNorm2d(8)).add(nn::ReLU()).add(nn::MaxPool2d(2))
//        .add(nn::Flatten()).add(nn::Linear(14 * 14 * 8, 10));
//   model.init_parameters(42);
//   nn::Tensor y = model.forward(x);   // x: [batch][28][28][1]
//
// Parameters are named like PyTorch's state_dict keys: "<index>.<param>",
// e.g. "0.weight", "0.bias", "1.running_mean". BatchNorm also accepts (and
// ignores) "<index>.num_batches_tracked", which PyTorch exports.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sparq/nn/layers.hpp"

namespace sparq::nn {

using TensorMap = std::map<std::string, Tensor>;

class Sequential {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<Layer> layers);

  /// Appends a layer; returns *this so calls chain.
  Sequential& add(Layer layer);
  std::size_t size() const noexcept { return layers_.size(); }
  bool empty() const noexcept { return layers_.empty(); }
  const Layer& operator[](std::size_t i) const { return layers_.at(i); }
  Layer& operator[](std::size_t i) { return layers_.at(i); }
  const std::vector<Layer>& layers() const noexcept { return layers_; }

  /// Runs every layer in order. Throws sparq::Error (naming the layer) for an
  /// input whose shape the first mismatching layer cannot take.
  Tensor forward(const Tensor& x) const;

  /// Copies of every parameter, by name ("0.weight", ...).
  TensorMap state_dict() const;
  /// Sets parameters by name. Each given tensor must have exactly the shape
  /// of the parameter it replaces (else sparq::Error naming both shapes).
  /// strict: every parameter must be given and no unknown name may appear.
  void load_state_dict(const TensorMap& tensors, bool strict = true);

  /// PyTorch's default initialisation, deterministic for a seed:
  /// Linear/Conv2d weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
  /// (kaiming_uniform with a = sqrt(5)); BatchNorm gamma 1, beta 0, mean 0, var 1.
  void init_parameters(uint64_t seed);

  /// Bytes of all FP32 parameters (4 per element).
  std::size_t weight_bytes() const;
  /// One line per layer: "0  Conv2d(1 -> 8, k3x3, s1, p1)".
  std::string summary() const;

 private:
  std::vector<Layer> layers_;
};

/// Folds every BatchNorm that directly follows a Linear or Conv2d into that
/// layer and removes it (indices of later layers shift down). For channel c,
/// with g = gamma[c] / sqrt(var[c] + eps) computed in double:
///   W'[c] = W[c] * g,   b'[c] = (b[c] - mean[c]) * g + beta[c]
/// each rounded once to float, so the folded parameters are the exact FP32
/// roundings of the true folded values. A BatchNorm after anything else is
/// left in place. Returns the number of BatchNorms folded.
int fold_batchnorm(Sequential& model);

}  // namespace sparq::nn
