// The operator concept of the model graph (graph.hpp).
//
// A graph operator is a small copyable struct with
//   static constexpr const char* kind;   // "Add", "LayerNorm", ...
//   static constexpr int arity;          // inputs it takes; -1: one or more
//   std::string describe() const;        // "LayerNorm(768, eps=1e-12)"
//   Tensor forward(const Tensor& x) const;                        // arity 1
//   Tensor forward(std::span<const Tensor* const> inputs) const;  // otherwise
// and, when it has parameters,
//   void for_each_param(const ParamVisitor& f);     // f("weight", tensor), ...
//   void init_parameters(std::mt19937_64& rng);     // PyTorch's default init
// Parameter names are relative to the node: node "encoder.layer.0.output.LayerNorm"
// with parameter "weight" is the state_dict key
// "encoder.layer.0.output.LayerNorm.weight".
#pragma once

#include <functional>
#include <string>

#include "sparq/nn/tensor.hpp"

namespace sparq::nn {

using ParamVisitor = std::function<void(const std::string& name, Tensor& value)>;

}  // namespace sparq::nn
