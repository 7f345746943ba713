// The FP32 model graph (sparq/nn/graph.hpp) and its multi-input operators
// (Add, Concat). Other operators live with their families: ops_cnn.cpp,
// transformer.cpp; the Sequential layers in layers.cpp.
#include "sparq/nn/graph.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <set>
#include <type_traits>
#include <utility>

#include "nn/nn_internal.hpp"
#include "sparq/error.hpp"

namespace sparq::nn {

using sparq::detail::fail;

// ------------------------------------------------------------- Add, Concat
Tensor Add::forward(std::span<const Tensor* const> inputs) const {
  if (inputs.size() != 2) fail("Add: takes 2 inputs, got {}", inputs.size());
  const Tensor& a = *inputs[0];
  const Tensor& b = *inputs[1];
  if (a.shape != b.shape) {
    fail("Add: input shapes {} and {} must be equal", shape_to_string(a.shape),
         shape_to_string(b.shape));
  }
  Tensor y = a;
  for (std::size_t i = 0; i < y.data.size(); ++i) y.data[i] += b.data[i];
  return y;
}

Tensor Concat::forward(std::span<const Tensor* const> inputs) const {
  if (inputs.empty()) fail("Concat: takes at least one input");
  const Tensor& first = *inputs[0];
  if (first.rank() < 1) fail("Concat: inputs must have rank >= 1, got a scalar");
  std::vector<int64_t> shape = first.shape;
  int64_t total = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = *inputs[i];
    const bool same_lead = t.rank() == first.rank() &&
                           std::equal(t.shape.begin(), t.shape.end() - 1, first.shape.begin());
    if (!same_lead) {
      fail("Concat: input {} has shape {}; every axis but the last must match input 0's {}", i,
           shape_to_string(t.shape), shape_to_string(first.shape));
    }
    total += t.shape.back();
  }
  shape.back() = total;
  Tensor y(shape);
  const int64_t rows = total == 0 ? 0 : y.numel() / total;
  int64_t offset = 0;
  for (const Tensor* t : inputs) {
    const int64_t c = t->shape.back();
    for (int64_t r = 0; r < rows; ++r) {
      std::copy_n(t->data.data() + r * c, c, y.data.data() + r * total + offset);
    }
    offset += c;
  }
  return y;
}

// ------------------------------------------------------------- node ops
namespace {

template <class T>
constexpr int arity_of() {
  if constexpr (std::is_same_v<T, Layer>) {
    return 1;
  } else {
    return T::arity;
  }
}

int op_arity(const NodeOp& op) {
  return std::visit([](const auto& o) { return arity_of<std::decay_t<decltype(o)>>(); }, op);
}

}  // namespace

Tensor detail::run_node_op(const NodeOp& op, std::span<const Tensor* const> in) {
  return std::visit(
      [&](const auto& o) -> Tensor {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, Layer>) {
          return nn::forward(o, *in[0]);
        } else if constexpr (T::arity == 1) {
          return o.forward(*in[0]);
        } else {
          return o.forward(in);
        }
      },
      op);
}

void detail::for_each_node_param(NodeOp& op, const std::string& prefix, const ParamVisitor& f) {
  std::visit(
      [&](auto& o) {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, Layer>) {
          detail::for_each_layer_param(o, prefix, f);
        } else if constexpr (requires { o.for_each_param(f); }) {
          o.for_each_param([&](const std::string& name, Tensor& t) { f(prefix + name, t); });
        }
      },
      op);
}

namespace {

void init_node_parameters(NodeOp& op, std::mt19937_64& rng) {
  std::visit(
      [&](auto& o) {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, Layer>) {
          detail::init_layer_parameters(o, rng);
        } else if constexpr (requires { o.init_parameters(rng); }) {
          o.init_parameters(rng);
        }
      },
      op);
}

std::string arity_text(int arity) {
  return arity < 0 ? std::string("one or more") : std::to_string(arity);
}

}  // namespace

const char* op_kind(const NodeOp& op) noexcept {
  return std::visit(
      [](const auto& o) -> const char* {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, Layer>) {
          return layer_kind(o);
        } else {
          return T::kind;
        }
      },
      op);
}

std::string describe(const NodeOp& op) {
  return std::visit(
      [](const auto& o) -> std::string {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, Layer>) {
          return nn::describe(o);
        } else {
          return o.describe();
        }
      },
      op);
}

// ------------------------------------------------------------- Graph
Graph::Graph(std::vector<std::string> input_names) : inputs_(std::move(input_names)) {
  if (inputs_.empty()) fail("Graph: input_names must name at least one input");
  std::set<std::string> seen;
  for (const std::string& n : inputs_) {
    if (n.empty()) fail("Graph: input names must not be empty");
    if (!seen.insert(n).second) fail("Graph: input name '{}' appears twice", n);
  }
}

Graph Graph::from_sequential(const Sequential& s) {
  Graph g;
  for (std::size_t i = 0; i < s.size(); ++i) g.add(std::to_string(i), s[i]);
  return g;
}

const std::string& Graph::add(std::string name, NodeOp op, std::vector<std::string> inputs) {
  if (name.empty()) fail("Graph::add: the node name must not be empty");
  if (index_.count(name) || std::find(inputs_.begin(), inputs_.end(), name) != inputs_.end()) {
    fail("Graph::add: name '{}' is already used by a node or an input", name);
  }
  if (inputs.empty()) inputs.push_back(nodes_.empty() ? inputs_.front() : nodes_.back().name);
  for (const std::string& in : inputs) {
    if (!index_.count(in) && std::find(inputs_.begin(), inputs_.end(), in) == inputs_.end()) {
      fail(
          "Graph::add: node '{}' reads '{}', which is neither a graph input nor a node added "
          "before it",
          name, in);
    }
  }
  const int arity = op_arity(op);
  if ((arity >= 0 && static_cast<int>(inputs.size()) != arity) || inputs.empty()) {
    fail("Graph::add: node '{}' ({}) takes {} input(s), got {}", name, op_kind(op),
         arity_text(arity), inputs.size());
  }
  index_[name] = nodes_.size();
  nodes_.push_back(Node{std::move(name), std::move(op), std::move(inputs)});
  if (!explicit_outputs_) outputs_ = {nodes_.back().name};
  return nodes_.back().name;
}

void Graph::set_outputs(std::vector<std::string> names) {
  if (names.empty()) fail("Graph::set_outputs: name at least one output");
  for (const std::string& n : names) {
    if (!index_.count(n)) fail("Graph::set_outputs: '{}' is not a node", n);
  }
  outputs_ = std::move(names);
  explicit_outputs_ = true;
}

int64_t Graph::find(const std::string& name) const noexcept {
  auto it = index_.find(name);
  return it == index_.end() ? -1 : static_cast<int64_t>(it->second);
}

const Node& Graph::node(const std::string& name) const {
  const int64_t i = find(name);
  if (i < 0) fail("Graph::node: no node named '{}'", name);
  return nodes_[static_cast<std::size_t>(i)];
}

NodeOp& Graph::op(const std::string& name) {
  return const_cast<Node&>(std::as_const(*this).node(name)).op;
}

Tensor Graph::forward(const Tensor& x) const { return forward(std::vector<Tensor>{x}); }

Tensor Graph::forward(const std::vector<Tensor>& inputs) const {
  return forward_outputs(inputs).front();
}

std::vector<Tensor> Graph::forward_outputs(const std::vector<Tensor>& inputs) const {
  return forward_visit(inputs, {});
}

std::vector<Tensor> Graph::forward_visit(
    const std::vector<Tensor>& inputs,
    const std::function<void(std::size_t node, const Tensor& value)>& visit) const {
  if (inputs.size() != inputs_.size()) {
    fail("Graph::forward: got {} input tensor(s); the graph takes {} ({})", inputs.size(),
         inputs_.size(), fmt::join(inputs_, ", "));
  }
  if (nodes_.empty()) fail("Graph::forward: the graph has no node");
  const std::vector<std::string>& outs = outputs_;
  // Values are freed after their last reader, so a deep network holds only
  // the activations still needed (a residual block's identity, not every layer's).
  std::vector<std::size_t> last_use(nodes_.size(), 0);
  std::vector<bool> is_output(nodes_.size(), false);
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    for (const std::string& in : nodes_[i].inputs) {
      const int64_t j = find(in);
      if (j >= 0) last_use[static_cast<std::size_t>(j)] = i;
    }
  }
  for (const std::string& o : outs) is_output[static_cast<std::size_t>(find(o))] = true;
  std::vector<Tensor> values(nodes_.size());
  std::vector<const Tensor*> args;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    args.clear();
    for (const std::string& in : n.inputs) {
      const int64_t j = find(in);
      if (j >= 0) {
        args.push_back(&values[static_cast<std::size_t>(j)]);
      } else {
        const auto k = std::find(inputs_.begin(), inputs_.end(), in) - inputs_.begin();
        args.push_back(&inputs[static_cast<std::size_t>(k)]);
      }
    }
    try {
      const int arity = op_arity(n.op);
      if (arity >= 0 && static_cast<int>(args.size()) != arity) {
        fail("takes {} input(s), the node has {}", arity, args.size());
      }
      values[i] = detail::run_node_op(n.op, args);
    } catch (const Error& e) {
      fail("Graph node '{}' ({}): {}", n.name, describe(n.op), e.what());
    }
    if (visit) visit(i, values[i]);
    for (const std::string& in : n.inputs) {
      const int64_t j = find(in);
      if (j >= 0 && last_use[static_cast<std::size_t>(j)] == i &&
          !is_output[static_cast<std::size_t>(j)]) {
        values[static_cast<std::size_t>(j)] = Tensor();
      }
    }
  }
  std::vector<Tensor> result;
  for (const std::string& o : outs) result.push_back(values[static_cast<std::size_t>(find(o))]);
  return result;
}

TensorMap Graph::state_dict() const {
  TensorMap out;
  for (const Node& n : nodes_) {
    // The visitor signature serves loading too; nothing is written here.
    detail::for_each_node_param(const_cast<NodeOp&>(n.op), n.name + ".",
                                [&](const std::string& key, Tensor& t) { out[key] = t; });
  }
  return out;
}

void Graph::load_state_dict(const TensorMap& tensors, bool strict, ConvWeightLayout layout) {
  struct Slot {
    Tensor* target;
    bool conv_weight;
  };
  std::map<std::string, Slot> slots;
  for (Node& n : nodes_) {
    const auto* layer = std::get_if<Layer>(&n.op);
    const bool is_conv = layer && std::holds_alternative<Conv2d>(*layer);
    detail::for_each_node_param(n.op, n.name + ".", [&](const std::string& key, Tensor& t) {
      slots[key] = Slot{&t, is_conv && key == n.name + ".weight"};
    });
  }
  // Convert and check everything first: a failed load leaves the graph intact.
  std::vector<std::string> missing, unused;
  std::vector<std::pair<Tensor*, Tensor>> assign;
  for (const auto& [key, slot] : slots) {
    auto it = tensors.find(key);
    if (it == tensors.end()) {
      missing.push_back(fmt::format("{} {}", key, shape_to_string(slot.target->shape)));
      continue;
    }
    Tensor value = it->second;
    if (slot.conv_weight && layout == ConvWeightLayout::oihw) {
      if (value.rank() != 4) {
        fail(
            "load_state_dict: conv weight '{}' has shape {}; expected PyTorch's rank-4 "
            "[O][I][H][W]",
            key, shape_to_string(value.shape));
      }
      value = oihw_to_ohwi(value);
    }
    if (value.shape != slot.target->shape || value.numel() != slot.target->numel()) {
      fail("load_state_dict: parameter '{}' has shape {}{} but the model expects {}", key,
           shape_to_string(it->second.shape),
           slot.conv_weight && layout == ConvWeightLayout::oihw ? " (OIHW)" : "",
           shape_to_string(slot.target->shape));
    }
    assign.emplace_back(slot.target, std::move(value));
  }
  for (const auto& [key, t] : tensors) {
    if (!slots.count(key) && !key.ends_with(".num_batches_tracked")) {
      unused.push_back(fmt::format("{} {}", key, shape_to_string(t.shape)));
    }
  }
  if (strict && (!missing.empty() || !unused.empty())) {
    // Side by side, so a prefix or naming mismatch is visible at a glance.
    std::size_t width = 32;
    for (const std::string& m : missing) width = std::max(width, m.size() + 2);
    std::string table = fmt::format("  {:<{}}{}\n", "missing (the model expects)", width,
                                    "unused (in the given tensors)");
    for (std::size_t i = 0; i < std::max(missing.size(), unused.size()); ++i) {
      table += fmt::format("  {:<{}}{}\n", i < missing.size() ? missing[i] : "-", width,
                           i < unused.size() ? unused[i] : "-");
    }
    fail("load_state_dict: {} parameter(s) missing and {} tensor(s) unused:\n{}", missing.size(),
         unused.size(), table);
  }
  for (auto& [target, value] : assign) *target = std::move(value);
}

void Graph::init_parameters(uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (Node& n : nodes_) init_node_parameters(n.op, rng);
}

std::size_t weight_bytes(const NodeOp& op) {
  if (const auto* e = std::get_if<Embedding>(&op)) return e->weight_bytes();
  std::size_t bytes = 0;
  // for_each_node_param only reads here; it takes a mutable op for loaders.
  detail::for_each_node_param(const_cast<NodeOp&>(op), "", [&](const std::string&, Tensor& t) {
    bytes += t.data.size() * sizeof(float);
  });
  return bytes;
}

std::size_t Graph::weight_bytes() const {
  std::size_t bytes = 0;
  for (const Node& n : nodes_) bytes += nn::weight_bytes(n.op);
  return bytes;
}

std::string Graph::summary() const {
  std::size_t width = 8;
  for (const Node& n : nodes_) width = std::max(width, n.name.size() + 2);
  std::string s;
  for (const Node& n : nodes_) {
    s += fmt::format("{:<{}}{}  <- {}\n", n.name, width, describe(n.op), fmt::join(n.inputs, ", "));
  }
  return s;
}

// ------------------------------------------------------------- BatchNorm folding
int fold_batchnorm(Graph& graph) {
  const std::vector<Node>& nodes = graph.nodes();
  std::map<std::string, int> readers;
  for (const Node& n : nodes) {
    for (const std::string& in : n.inputs) ++readers[in];
  }
  for (const std::string& o : graph.outputs()) ++readers[o];
  std::vector<Node> folded_nodes = nodes;
  std::map<std::string, std::string> rename;  // folded BatchNorm -> the conv it went into
  std::vector<bool> drop(nodes.size(), false);
  int folded = 0;
  for (std::size_t i = 0; i < folded_nodes.size(); ++i) {
    const auto* layer = std::get_if<Layer>(&folded_nodes[i].op);
    const auto* bn = layer ? std::get_if<BatchNorm>(layer) : nullptr;
    if (!bn || folded_nodes[i].inputs.size() != 1) continue;
    const std::string& src = folded_nodes[i].inputs[0];
    const int64_t j = graph.find(src);
    if (j < 0 || readers[src] != 1 || drop[static_cast<std::size_t>(j)]) continue;
    auto* prev = std::get_if<Layer>(&folded_nodes[static_cast<std::size_t>(j)].op);
    if (prev && detail::fold_batchnorm_into(*prev, *bn, "'" + folded_nodes[i].name + "'")) {
      drop[i] = true;
      rename[folded_nodes[i].name] = src;
      ++folded;
    }
  }
  if (folded == 0) return 0;
  auto resolve = [&](const std::string& n) {
    auto it = rename.find(n);
    return it == rename.end() ? n : it->second;
  };
  std::vector<std::string> outputs;
  for (const std::string& o : graph.outputs()) outputs.push_back(resolve(o));
  Graph out(graph.input_names());
  for (std::size_t i = 0; i < folded_nodes.size(); ++i) {
    if (drop[i]) continue;
    Node& n = folded_nodes[i];
    for (std::string& in : n.inputs) in = resolve(in);
    out.add(std::move(n.name), std::move(n.op), std::move(n.inputs));
  }
  out.set_outputs(std::move(outputs));
  graph = std::move(out);
  return folded;
}

}  // namespace sparq::nn
