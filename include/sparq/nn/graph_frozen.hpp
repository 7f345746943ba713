// FrozenGraph: an FP32 graph prepared for inference, sparq's fastest FP32
// (PyTorch's torch.jit.freeze + optimize_for_inference in spirit).
//
//   nn::Graph g = nn::resnet50();  nn::load_weights(g, "resnet50.safetensors");
//   const nn::FrozenGraph f = nn::freeze(g);   // once
//   nn::Tensor y = f.forward(x);               // per request
//
// What freeze() does, once:
//   - folds every BatchNorm that follows a Linear/Conv2d (fold_batchnorm);
//   - packs each Linear's and (non-depthwise) Conv2d's weights for the FP32
//     GEMM of the active ISA, so forward() never packs (Graph::forward packs
//     on every call: a Graph's weights are public tensors a caller may
//     change between calls);
//   - fuses a ReLU that is the only reader of a Linear/Conv2d into that
//     layer's GEMM store;
// and forward() runs element-wise nodes (ReLU, ReLU6, BatchNorm, Flatten,
// Add) in place on an input no later node reads, and a 1x1 stride-1
// convolution straight on its input (no patch matrix; Graph::forward does
// that too).
//
// The frozen graph owns copies of the weights: changing the Graph afterwards
// does not change it (freeze again). Its outputs are bit-identical to
// Graph::forward on fold_batchnorm(graph) (tests/unit/nn_frozen_graph_test.cpp).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sparq/nn/graph.hpp"

namespace sparq::nn {

class FrozenGraph {
 public:
  struct Impl;
  FrozenGraph();
  explicit FrozenGraph(std::shared_ptr<const Impl> impl);

  /// FP32 in, FP32 out, like Graph::forward (the first output).
  Tensor forward(const Tensor& x) const;
  Tensor forward(const std::vector<Tensor>& inputs) const;
  /// Every output, in the graph's outputs() order.
  std::vector<Tensor> forward_outputs(const std::vector<Tensor>& inputs) const;
  /// forward_outputs() calling `after_step(i)` when step i is done
  /// (profiling: the wall time between calls is step i's).
  std::vector<Tensor> forward_visit(const std::vector<Tensor>& inputs,
                                    const std::function<void(std::size_t step)>& after_step) const;
  /// What each step runs, for grouping: "Conv2d 3x3", "Conv2d 1x1",
  /// "Conv2d dw 3x3", "Linear", "Add", ... (a fused ReLU is in summary()).
  std::vector<std::string> step_kinds() const;
  /// Bytes of the parameters as forward() reads them (4 per FP32 weight).
  std::size_t weight_bytes() const;
  /// One line per step: name, operator, " + ReLU" where fused, inputs.
  std::string summary() const;

 private:
  std::shared_ptr<const Impl> impl_;
};

/// Prepares `graph` for inference as described above. Throws sparq::Error
/// for what fold_batchnorm rejects (a BatchNorm whose features do not match
/// the layer before it).
FrozenGraph freeze(const Graph& graph);

}  // namespace sparq::nn
