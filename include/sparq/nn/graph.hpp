// Graph: an FP32 model as named nodes with explicit inputs (PyTorch's
// module paths as names), for models a Sequential cannot express: residual
// blocks, attention, several inputs or outputs.
//
//   nn::Graph g;                                   // one input, "input"
//   g.add("conv1", nn::Conv2d(3, 64, 7, {.stride = {2, 2}, .padding = {3, 3}, .bias = false}));
//   g.add("bn1", nn::BatchNorm2d(64));
//   g.add("relu", nn::ReLU());                     // input: the node added before
//   g.add("layer1.0.conv1", nn::Conv2d(64, 64, 3, {.padding = {1, 1}, .bias = false}), {"relu"});
//   ...
//   g.add("layer1.0.add", nn::Add(), {"layer1.0.bn2", "relu"});   // residual
//   nn::Tensor y = g.forward(x);                   // the last node's output
//
// Node names are the state_dict prefixes: the parameters of node "layer1.0.conv1"
// are "layer1.0.conv1.weight" (and ".bias"), so a PyTorch state_dict loads
// with load_state_dict / nn::load_weights without a rename map. Names must be
// unique, non-empty and differ from the graph's input names; a node's inputs
// must be graph inputs or nodes added before it (the graph is built in
// topological order, so it has no cycles by construction).
//
// Sequential stays as sugar: Graph::from_sequential(s) builds the chain with
// nodes named "0", "1", ... (the Sequential's own parameter names).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "sparq/nn/graph_op.hpp"
#include "sparq/nn/layers.hpp"
#include "sparq/nn/ops.hpp"
#include "sparq/nn/sequential.hpp"
#include "sparq/nn/smoothquant.hpp"
#include "sparq/nn/transformer.hpp"

namespace sparq::nn {

/// What a node computes: one of the Sequential layers (single input), or a
/// graph operator (ops.hpp, transformer.hpp, smoothquant.hpp).
using NodeOp = std::variant<Layer, Add, Concat, AvgPool2d, AdaptiveAvgPool2d, Hardswish, SiLU,
                            Sigmoid, Embedding, LayerNorm, GELU, Softmax, Tanh, SelectIndex,
                            Attention, Reshape, Mean, ChannelScale>;

/// "Conv2d", "Add", "LayerNorm", ...
const char* op_kind(const NodeOp& op) noexcept;
/// "Conv2d(3 -> 64, k7x7, s2, p3)", "Add", ...
std::string describe(const NodeOp& op);
/// Bytes of an operator's parameters as its forward reads them: 4 per FP32
/// element, an int8 Embedding's rows and scales (Embedding::weight_bytes).
std::size_t weight_bytes(const NodeOp& op);

struct Node {
  std::string name;  ///< "layer1.0.conv1"
  NodeOp op;
  std::vector<std::string> inputs;  ///< graph input or earlier node names
};

/// How conv weights in a state_dict are laid out.
enum class ConvWeightLayout : uint8_t {
  ohwi,  ///< sparq's [out][kh][kw][in/groups] (what state_dict() returns)
  oihw,  ///< PyTorch's [out][in/groups][kh][kw]: converted on load
};

class Graph {
 public:
  /// A graph with the given input names (default: one input, "input").
  explicit Graph(std::vector<std::string> input_names = {"input"});
  /// The chain of a Sequential: nodes "0", "1", ... on input "input".
  static Graph from_sequential(const Sequential& s);

  /// Adds a node and returns its name. Empty `inputs`: the node added last
  /// (the graph's first input for the first node). Throws sparq::Error for a
  /// duplicate or empty name, an unknown input, or an input count the
  /// operator does not take.
  const std::string& add(std::string name, NodeOp op, std::vector<std::string> inputs = {});

  /// The outputs forward() returns (default: the last node added).
  void set_outputs(std::vector<std::string> names);
  const std::vector<std::string>& outputs() const noexcept { return outputs_; }
  const std::vector<std::string>& input_names() const noexcept { return inputs_; }
  const std::vector<Node>& nodes() const noexcept { return nodes_; }
  std::size_t size() const noexcept { return nodes_.size(); }
  /// The node named `name` (sparq::Error naming it when there is none).
  const Node& node(const std::string& name) const;
  /// The operator of a node, to change its parameters or hyper-parameters
  /// (forward() re-checks the input count, so an operator of another arity
  /// put here is an error at run time, not a crash).
  NodeOp& op(const std::string& name);
  /// Index of a node, or -1.
  int64_t find(const std::string& name) const noexcept;

  /// Runs the graph on one input per input name (in input_names() order) and
  /// returns the first output. Throws sparq::Error naming the node whose
  /// operator rejects its inputs.
  Tensor forward(const Tensor& x) const;
  Tensor forward(const std::vector<Tensor>& inputs) const;
  /// Every output, in outputs() order.
  std::vector<Tensor> forward_outputs(const std::vector<Tensor>& inputs) const;
  /// Calls `visit(node_index, value)` with every node's output as it is
  /// computed (calibration, traces). Returns the outputs like forward_outputs.
  std::vector<Tensor> forward_visit(
      const std::vector<Tensor>& inputs,
      const std::function<void(std::size_t node, const Tensor& value)>& visit) const;

  /// Copies of every parameter, by state_dict key ("layer1.0.conv1.weight").
  TensorMap state_dict() const;
  /// Sets parameters by key; each tensor must have the parameter's shape
  /// (with `layout` oihw, rank-4 Conv2d weights are given as PyTorch's
  /// [O][I][H][W] and converted). strict: every parameter must be given and
  /// no unknown key may appear ("num_batches_tracked" is ignored); when keys
  /// do not match, the error lists the missing parameters and the unused
  /// tensors side by side. Nothing changes unless everything validates.
  void load_state_dict(const TensorMap& tensors, bool strict = true,
                       ConvWeightLayout layout = ConvWeightLayout::ohwi);
  /// PyTorch's default initialisation, deterministic for a seed.
  void init_parameters(uint64_t seed);

  /// The sum of weight_bytes(op) over the nodes.
  std::size_t weight_bytes() const;
  /// One line per node: "layer1.0.conv1  Conv2d(64 -> 64, k3x3, s1, p1)  <- relu".
  std::string summary() const;

 private:
  std::vector<std::string> inputs_;
  std::vector<Node> nodes_;
  std::vector<std::string> outputs_;  ///< the last node until set_outputs
  bool explicit_outputs_ = false;
  std::map<std::string, std::size_t> index_;
};

/// Folds every BatchNorm whose input is a Linear/Conv2d node that nothing
/// else reads into that node (the arithmetic of fold_batchnorm on a
/// Sequential). The conv keeps its name, the BatchNorm node is removed and
/// its readers (and the outputs) read the conv instead. Returns the number
/// folded.
int fold_batchnorm(Graph& graph);

/// Loads a safetensors state_dict into `graph` (load_state_dict with the
/// given layout; default oihw, the layout of a PyTorch export).
void load_weights(Graph& graph, const std::filesystem::path& safetensors_path, bool strict = true,
                  ConvWeightLayout layout = ConvWeightLayout::oihw);

}  // namespace sparq::nn
