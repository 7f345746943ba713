// nn::freeze: an FP32 graph prepared once for inference (graph_frozen.hpp).
#include "sparq/nn/graph_frozen.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <utility>

#include "nn/nn_internal.hpp"
#include "sparq/error.hpp"

namespace sparq::nn {

using sparq::detail::fail;

struct FrozenGraph::Impl {
  struct Step {
    std::string name;
    NodeOp op;  ///< a packed layer's weight tensor is dropped (`packed` replaces it)
    std::vector<std::string> input_names;
    /// Value slots: [0, graph inputs) are the graph's inputs, then one per step.
    std::vector<std::size_t> inputs;
    /// Per input: this step is the last to read it and it is no output and
    /// no graph input, so the step may take its storage.
    std::vector<bool> takes;
    bool relu = false;                     ///< a ReLU fused into the GEMM's store
    std::vector<PackedWeightsF32> packed;  ///< Linear: 1; im2col Conv2d: one per group
  };
  std::vector<std::string> input_names;
  std::vector<Step> steps;
  std::vector<std::size_t> outputs;  ///< value slots
};

namespace {

// The Linear, or the convolution run through the GEMM, of a node (null otherwise).
const Linear* as_linear(const NodeOp& op) {
  const auto* layer = std::get_if<Layer>(&op);
  return layer ? std::get_if<Linear>(layer) : nullptr;
}
const Conv2d* as_gemm_conv(const NodeOp& op) {
  const auto* layer = std::get_if<Layer>(&op);
  const auto* conv = layer ? std::get_if<Conv2d>(layer) : nullptr;
  // conv2d_forward's own depthwise kernel reads the weight tensor as it is.
  return conv && !(conv->depthwise() && conv->out_channels == conv->in_channels) ? conv : nullptr;
}
bool is_relu(const NodeOp& op) {
  const auto* layer = std::get_if<Layer>(&op);
  return layer && std::holds_alternative<ReLU>(*layer);
}

std::string step_kind(const NodeOp& op) {
  if (const auto* layer = std::get_if<Layer>(&op)) {
    if (const auto* conv = std::get_if<Conv2d>(layer)) {
      if (conv->depthwise()) return fmt::format("Conv2d dw {}x{}", conv->kernel_h, conv->kernel_w);
      return fmt::format("Conv2d {}x{}", conv->kernel_h, conv->kernel_w);
    }
  }
  return op_kind(op);
}

// Runs one step; `in` holds its inputs, `own` the storage of those it takes.
Tensor run_step(const FrozenGraph::Impl::Step& s, std::vector<const Tensor*>& in,
                std::vector<Tensor>& own) {
  if (const Linear* l = as_linear(s.op)) {
    return detail::linear_forward(*l, *in[0], &s.packed[0], s.relu);
  }
  if (const Conv2d* c = as_gemm_conv(s.op)) {
    return detail::conv2d_forward(*c, *in[0], s.packed, s.relu);
  }
  if (const auto* layer = std::get_if<Layer>(&s.op)) {
    if (s.takes[0]) {
      Tensor y = std::move(own[0]);
      if (detail::forward_in_place(*layer, y)) return y;
      own[0] = std::move(y);  // not element-wise: leave the input as it was
    }
    Tensor y = nn::forward(*layer, *in[0]);
    if (s.relu) detail::apply_activation(y.data.data(), y.numel(), Activation::relu);
    return y;
  }
  if (std::holds_alternative<Add>(s.op) && (s.takes[0] || s.takes[1])) {
    // a + b into the storage of an input nobody reads later (float addition
    // commutes exactly, so either order gives Add::forward's result).
    const std::size_t mine = s.takes[0] ? 0 : 1;
    const Tensor& other = *in[1 - mine];
    if (in[0]->shape != in[1]->shape) {
      fail("Add: input shapes {} and {} must be equal", shape_to_string(in[0]->shape),
           shape_to_string(in[1]->shape));
    }
    Tensor y = std::move(own[mine]);
    for (std::size_t i = 0; i < y.data.size(); ++i) y.data[i] += other.data[i];
    return y;
  }
  return detail::run_node_op(s.op, in);
}

}  // namespace

FrozenGraph::FrozenGraph() : impl_(std::make_shared<Impl>()) {}
FrozenGraph::FrozenGraph(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

FrozenGraph freeze(const Graph& graph) {
  Graph g = graph;
  fold_batchnorm(g);
  if (g.nodes().empty()) fail("freeze: the graph has no node");
  auto impl = std::make_shared<FrozenGraph::Impl>();
  impl->input_names = g.input_names();
  const std::size_t n_in = impl->input_names.size();
  std::map<std::string, int> readers;
  for (const Node& n : g.nodes()) {
    for (const std::string& in : n.inputs) ++readers[in];
  }
  for (const std::string& o : g.outputs()) ++readers[o];
  std::map<std::string, std::size_t> slot;  // node or input name -> value slot
  for (std::size_t i = 0; i < n_in; ++i) slot[impl->input_names[i]] = i;
  for (const Node& n : g.nodes()) {
    if (is_relu(n.op) && n.inputs.size() == 1 && readers[n.inputs[0]] == 1) {
      const std::size_t src = slot.at(n.inputs[0]);
      if (src >= n_in) {
        FrozenGraph::Impl::Step& prev = impl->steps[src - n_in];
        if (!prev.relu && (as_linear(prev.op) || as_gemm_conv(prev.op))) {
          prev.relu = true;  // the ReLU's readers read the layer's output
          slot[n.name] = src;
          continue;
        }
      }
    }
    FrozenGraph::Impl::Step s;
    s.name = n.name;
    s.op = n.op;
    s.input_names = n.inputs;
    for (const std::string& in : n.inputs) s.inputs.push_back(slot.at(in));
    if (auto* layer = std::get_if<Layer>(&s.op)) {
      if (auto* l = std::get_if<Linear>(layer)) {
        s.packed.push_back(pack_weights_f32(l->weight.data.data(), l->out_features, l->in_features,
                                            WeightLayout::out_in));
        l->weight = Tensor();
      } else if (auto* c = std::get_if<Conv2d>(layer); c && as_gemm_conv(s.op)) {
        s.packed = detail::pack_conv2d_weights(*c);
        c->weight = Tensor();
      }
    }
    slot[n.name] = n_in + impl->steps.size();
    impl->steps.push_back(std::move(s));
  }
  for (const std::string& o : g.outputs()) impl->outputs.push_back(slot.at(o));
  // Which step reads each value last (outputs and graph inputs are kept).
  std::vector<std::size_t> last(n_in + impl->steps.size(), 0);
  for (std::size_t i = 0; i < impl->steps.size(); ++i) {
    for (std::size_t v : impl->steps[i].inputs) last[v] = i;
  }
  std::vector<bool> kept(last.size(), false);
  for (std::size_t i = 0; i < n_in; ++i) kept[i] = true;
  for (std::size_t o : impl->outputs) kept[o] = true;
  for (std::size_t i = 0; i < impl->steps.size(); ++i) {
    FrozenGraph::Impl::Step& s = impl->steps[i];
    for (std::size_t a = 0; a < s.inputs.size(); ++a) {
      const std::size_t v = s.inputs[a];
      // Read once by this step (Add(x, x) must not take x from itself).
      const bool once = std::count(s.inputs.begin(), s.inputs.end(), v) == 1;
      s.takes.push_back(!kept[v] && last[v] == i && once);
    }
  }
  return FrozenGraph(std::move(impl));
}

Tensor FrozenGraph::forward(const Tensor& x) const { return forward(std::vector<Tensor>{x}); }

Tensor FrozenGraph::forward(const std::vector<Tensor>& inputs) const {
  return forward_outputs(inputs).front();
}

std::vector<Tensor> FrozenGraph::forward_outputs(const std::vector<Tensor>& inputs) const {
  return forward_visit(inputs, {});
}

std::vector<Tensor> FrozenGraph::forward_visit(
    const std::vector<Tensor>& inputs,
    const std::function<void(std::size_t step)>& after_step) const {
  const Impl& im = *impl_;
  if (im.steps.empty()) fail("FrozenGraph::forward: the graph is empty (default-constructed)");
  if (inputs.size() != im.input_names.size()) {
    fail("FrozenGraph::forward: got {} input tensor(s); the graph takes {} ({})", inputs.size(),
         im.input_names.size(), fmt::join(im.input_names, ", "));
  }
  const std::size_t n_in = inputs.size();
  std::vector<Tensor> values(im.steps.size());
  auto value = [&](std::size_t v) -> Tensor& { return values[v - n_in]; };
  std::vector<const Tensor*> in;
  std::vector<Tensor> own;
  for (std::size_t i = 0; i < im.steps.size(); ++i) {
    const Impl::Step& s = im.steps[i];
    in.clear();
    own.assign(s.inputs.size(), Tensor());
    for (std::size_t a = 0; a < s.inputs.size(); ++a) {
      const std::size_t v = s.inputs[a];
      if (s.takes[a]) {
        own[a] = std::move(value(v));
        in.push_back(&own[a]);
      } else {
        in.push_back(v < n_in ? &inputs[v] : &value(v));
      }
    }
    try {
      values[i] = run_step(s, in, own);
    } catch (const Error& e) {
      fail("FrozenGraph node '{}' ({}): {}", s.name, describe(s.op), e.what());
    }
    if (after_step) after_step(i);
  }
  std::vector<Tensor> out;
  for (std::size_t o : im.outputs) out.push_back(o < n_in ? inputs[o] : value(o));
  return out;
}

std::vector<std::string> FrozenGraph::step_kinds() const {
  std::vector<std::string> kinds;
  for (const Impl::Step& s : impl_->steps) kinds.push_back(step_kind(s.op));
  return kinds;
}

std::size_t FrozenGraph::weight_bytes() const {
  std::size_t bytes = 0;
  for (const Impl::Step& s : impl_->steps) {
    bytes += nn::weight_bytes(s.op);  // what is left: biases, BatchNorm, Embedding, ...
    for (const PackedWeightsF32& p : s.packed) bytes += p.packed_bytes();
  }
  return bytes;
}

std::string FrozenGraph::summary() const {
  std::size_t width = 0;
  for (const Impl::Step& s : impl_->steps) width = std::max(width, s.name.size() + 2);
  std::string text;
  for (const Impl::Step& s : impl_->steps) {
    text += fmt::format("{:<{}}{}{}  <- {}\n", s.name, width, describe(s.op),
                        s.relu ? " + ReLU" : "", fmt::join(s.input_names, ", "));
  }
  return text;
}

}  // namespace sparq::nn
