// INT8 graphs (sparq/nn/graph_quantized.hpp): the fusion plan of a
// BatchNorm-folded Graph, its calibration, and the interpreter that runs the
// quantized steps on the Act values of interpreter.cpp.
#include "sparq/nn/graph_quantized.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "nn/nn_internal.hpp"
#include "sparq/error.hpp"
#include "sparq/quant/requantize.hpp"

namespace sparq::nn {

using detail::Act;
using detail::granularity_for;
using sparq::detail::fail;

namespace {

// ------------------------------------------------------------- the plan
/// One step of the quantized graph: a Linear/Conv2d with what was fused into
/// it, or any other node on its own.
struct PlanStep {
  std::string name;                 ///< the value it produces (the last fused node's name)
  std::vector<std::string> inputs;  ///< the node's inputs
  NodeOp op;                        ///< the (folded) node operator
  Activation act = Activation::none;
  std::string residual;             ///< value added before the final rounding, or empty
  std::vector<std::string> covers;  ///< the graph nodes it runs, first to last
  bool keep_fp32 = false;           ///< an override keeps this Linear/Conv2d FP32

  /// A Linear/Conv2d that becomes an INT8 unit.
  bool quantizable() const {
    if (keep_fp32) return false;
    const auto* l = std::get_if<Layer>(&op);
    return l && (std::holds_alternative<Linear>(*l) || std::holds_alternative<Conv2d>(*l));
  }
  const Layer& layer() const { return std::get<Layer>(op); }
};

bool is_layer(const NodeOp& op, auto tag) {
  const auto* l = std::get_if<Layer>(&op);
  return l && std::holds_alternative<decltype(tag)>(*l);
}

/// Fuses ReLU/ReLU6 into the Linear/Conv2d before them, and (with
/// `fuse_residual`) a residual Add (+ ReLU) into the static convolution that
/// is computed last of the Add's two inputs; nothing else changes.
std::vector<PlanStep> make_plan(const Graph& g, bool fuse_residual,
                                const std::map<std::string, LayerOverride>& overrides) {
  std::map<std::string, std::vector<std::size_t>> readers;
  for (std::size_t i = 0; i < g.size(); ++i) {
    for (const std::string& in : g.nodes()[i].inputs) readers[in].push_back(i);
  }
  std::set<std::string> outputs(g.outputs().begin(), g.outputs().end());
  // The node that alone reads `name` (none when `name` is an output).
  auto sole_reader = [&](const std::string& name) -> const Node* {
    auto it = readers.find(name);
    if (outputs.count(name) || it == readers.end() || it->second.size() != 1) return nullptr;
    return &g.nodes()[it->second[0]];
  };
  std::set<std::string> consumed;
  std::vector<PlanStep> plan;
  for (std::size_t i = 0; i < g.size(); ++i) {
    const Node& n = g.nodes()[i];
    if (consumed.count(n.name)) continue;
    PlanStep s{n.name, n.inputs, n.op, Activation::none, {}, {n.name}};
    s.keep_fp32 = overrides.count(n.name) && overrides.at(n.name).keep_fp32;
    if (s.quantizable()) {
      auto take_activation = [&](const std::string& from) {
        const Node* r = sole_reader(from);
        if (r && (is_layer(r->op, ReLU{}) || is_layer(r->op, ReLU6{}))) {
          s.act = is_layer(r->op, ReLU{}) ? Activation::relu : Activation::relu6;
          s.name = r->name;
          s.covers.push_back(r->name);
          consumed.insert(r->name);
        }
      };
      const Node* r = sole_reader(n.name);
      const auto* conv = std::get_if<Conv2d>(&s.layer());
      if (fuse_residual && conv && !conv->depthwise() && r && std::holds_alternative<Add>(r->op) &&
          r->inputs[0] != r->inputs[1]) {
        const std::string& other = r->inputs[0] == n.name ? r->inputs[1] : r->inputs[0];
        const int64_t j = g.find(other);
        if (j < static_cast<int64_t>(i)) {  // a graph input (-1) or computed before
          s.residual = other;
          s.name = r->name;
          s.covers.push_back(r->name);
          consumed.insert(r->name);
          take_activation(r->name);  // the ReLU after the add, if any
        }
      }
      if (s.residual.empty()) take_activation(n.name);
    }
    plan.push_back(std::move(s));
  }
  return plan;
}

void check_overrides(const std::map<std::string, LayerOverride>& overrides, const Graph& g) {
  for (const auto& [name, o] : overrides) {
    const int64_t i = g.find(name);
    const NodeOp* op = i < 0 ? nullptr : &g.nodes()[static_cast<std::size_t>(i)].op;
    if (op && std::holds_alternative<Embedding>(*op)) {
      if (o.weight_granularity) {
        fail(
            "override '{}' names an Embedding and sets weight_granularity; expected none (its "
            "int8 rows always have one scale per row; keep_fp32 keeps them FP32)",
            name);
      }
      continue;
    }
    const auto* l = op ? std::get_if<Layer>(op) : nullptr;
    if (!l || !(std::holds_alternative<Linear>(*l) || std::holds_alternative<Conv2d>(*l))) {
      fail("override '{}' names no Linear/Conv2d/Embedding node of the graph", name);
    }
  }
}

Graph folded_copy(const Graph& g) {
  Graph f = g;
  fold_batchnorm(f);
  return f;
}

/// The operator a step that has no INT8 unit runs: the node's own, with an
/// Embedding's rows made int8 (one scale per row) unless an override keeps
/// it FP32. The dequantization error is below half a step per element and
/// the next ops (Add, LayerNorm) are FP32, so no calibration is involved;
/// the bytes drop 4x (bert-base's 95 MB of tables).
NodeOp step_op(const PlanStep& p, const std::map<std::string, LayerOverride>& overrides) {
  NodeOp op = p.op;
  auto* e = std::get_if<Embedding>(&op);
  const auto o = overrides.find(p.name);
  if (e && !e->int8_rows() && !(o != overrides.end() && o->second.keep_fp32)) e->quantize_rows();
  return op;
}

/// Whether a graph operator kept in a quantized graph computes in INT8
/// (Attention's opt-in int8 products, an Embedding's int8 rows).
bool int8_node_op(const NodeOp& op) {
  if (const auto* a = std::get_if<Attention>(&op)) {
    return a->products == Attention::Products::int8;
  }
  if (const auto* e = std::get_if<Embedding>(&op)) return e->int8_rows();
  return false;
}

}  // namespace

// ------------------------------------------------------------- QuantizedGraph
QuantizedGraph::QuantizedGraph() : impl_(std::make_shared<Impl>()) {}
QuantizedGraph::QuantizedGraph(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

namespace {

Act run_step(const QuantizedGraph::Impl::Step& s, std::vector<Act> in, const Act* residual) {
  if (const auto* u = std::get_if<QuantizedUnit>(&s.op)) {
    if (!residual) return detail::run_unit_act(*u, std::move(in[0]));
    const auto& conv = std::get<QConv2d>(u->op);
    // The shortcut in its calibrated u8 form (a copy only if it is not already).
    Act converted;
    const Act* r = residual;
    if (!r->quantized || !(r->qp == s.residual_qparams)) {
      converted = *residual;
      detail::act_to_u8(converted, s.residual_qparams);
      r = &converted;
    }
    const detail::ConvResidual cr{r->q.data(), r->qp.zero_point, &s.residual_multipliers};
    Act out = detail::run_conv(conv, std::move(in[0]), nullptr, &cr);
    if (out.shape != r->shape) {
      fail("residual '{}' has shape {} but the convolution's output is {}", s.residual,
           shape_to_string(r->shape), shape_to_string(out.shape));
    }
    return out;
  }
  std::vector<Tensor> tensors;
  tensors.reserve(in.size());
  for (Act& a : in) tensors.push_back(detail::act_to_tensor(std::move(a)));
  std::vector<const Tensor*> args;
  for (const Tensor& t : tensors) args.push_back(&t);
  return detail::act_from_tensor(detail::run_node_op(std::get<NodeOp>(s.op), args));
}

}  // namespace

Tensor QuantizedGraph::forward(const Tensor& x) const { return forward(std::vector<Tensor>{x}); }

Tensor QuantizedGraph::forward(const std::vector<Tensor>& inputs) const {
  return forward_visit(inputs, {});
}

std::vector<std::string> QuantizedGraph::step_kinds() const {
  std::vector<std::string> kinds;
  for (const auto& s : impl_->steps) {
    const auto* u = std::get_if<QuantizedUnit>(&s.op);
    if (!u) {
      const NodeOp& op = std::get<NodeOp>(s.op);
      kinds.push_back(int8_node_op(op) ? fmt::format("INT8 {}", op_kind(op))
                                       : fmt::format("FP32 {}", op_kind(op)));
    } else if (const auto* c = std::get_if<QConv2d>(&u->op)) {
      kinds.push_back(fmt::format("QConv2d {}{}x{}{}", c->depthwise() ? "dw " : "", c->kernel_h,
                                  c->kernel_w, s.residual.empty() ? "" : " + residual"));
    } else if (std::holds_alternative<QLinear>(u->op)) {
      kinds.push_back("QLinear");
    } else if (std::holds_alternative<MaxPool2d>(u->op)) {
      kinds.push_back("MaxPool2d u8");
    } else if (std::holds_alternative<Flatten>(u->op)) {
      kinds.push_back("Flatten");
    } else {
      kinds.push_back("FP32 block");
    }
  }
  return kinds;
}

namespace {

/// The interpreter: runs every step, calling visit(i, value) with step i's
/// output (u8 or FP32) when it is done, and returns the first output.
Tensor run_steps(const QuantizedGraph::Impl& g, const std::vector<Tensor>& inputs,
                 const std::function<void(std::size_t step, const Act& value)>& visit) {
  if (g.steps.empty()) fail("QuantizedGraph::forward: the graph is empty");
  if (inputs.size() != g.inputs.size()) {
    fail("QuantizedGraph::forward: got {} input tensor(s); the graph takes {} ({})", inputs.size(),
         g.inputs.size(), fmt::join(g.inputs, ", "));
  }
  // Values by name, each freed after its last reader (moved into it).
  std::map<std::string, int> uses;
  for (const auto& s : g.steps) {
    for (const std::string& in : s.inputs) ++uses[in];
    if (!s.residual.empty()) ++uses[s.residual];
  }
  for (const std::string& o : g.outputs) ++uses[o];
  std::map<std::string, Act> values;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    values[g.inputs[i]] = detail::act_from_tensor(inputs[i]);
  }
  auto take = [&](const std::string& name) -> Act {
    Act& v = values.at(name);
    return --uses[name] == 0 ? std::move(v) : v;
  };
  for (std::size_t index = 0; index < g.steps.size(); ++index) {
    const auto& s = g.steps[index];
    std::vector<Act> in;
    for (const std::string& name : s.inputs) in.push_back(take(name));
    try {
      const Act* residual = s.residual.empty() ? nullptr : &values.at(s.residual);
      Act out = run_step(s, std::move(in), residual);
      if (!s.residual.empty() && --uses[s.residual] == 0) values.erase(s.residual);
      values[s.name] = std::move(out);
    } catch (const Error& e) {
      fail("QuantizedGraph step '{}': {}", s.name, e.what());
    }
    for (const std::string& name : s.inputs) {
      if (uses[name] == 0) values.erase(name);
    }
    if (visit) visit(index, values.at(s.name));
  }
  return detail::act_to_tensor(take(g.outputs.front()));
}

}  // namespace

Tensor QuantizedGraph::forward_visit(
    const std::vector<Tensor>& inputs,
    const std::function<void(std::size_t step)>& after_step) const {
  if (!after_step) return run_steps(*impl_, inputs, {});
  return run_steps(*impl_, inputs, [&](std::size_t step, const Act&) { after_step(step); });
}

std::size_t QuantizedGraph::weight_bytes() const {
  std::size_t bytes = 0;
  for (const auto& s : impl_->steps) {
    if (const auto* u = std::get_if<QuantizedUnit>(&s.op)) {
      bytes += detail::unit_weight_bytes(*u);
    } else {
      bytes += nn::weight_bytes(std::get<NodeOp>(s.op));
    }
  }
  return bytes;
}

namespace {

/// What a step runs: "QConv2d static relu (...)", "FP32 LayerNorm(...)",
/// "INT8 Embedding(...)" (summary() and the layer report's rows).
std::string step_description(const QuantizedGraph::Impl::Step& s) {
  if (const auto* u = std::get_if<QuantizedUnit>(&s.op)) return u->describe();
  const NodeOp& op = std::get<NodeOp>(s.op);
  return (int8_node_op(op) ? "INT8 " : "FP32 ") + describe(op);
}

}  // namespace

std::string QuantizedGraph::summary() const {
  std::size_t width = 8;
  for (const auto& s : impl_->steps) width = std::max(width, s.name.size() + 2);
  std::string out;
  for (const auto& s : impl_->steps) {
    std::string what = step_description(s);
    if (!s.residual.empty()) what += fmt::format(" + residual '{}'", s.residual);
    if (s.covers.size() > 1) what += fmt::format(" [{}]", fmt::join(s.covers, " + "));
    out += fmt::format("{:<{}}{}  <- {}\n", s.name, width, what, fmt::join(s.inputs, ", "));
  }
  return out;
}

std::vector<std::vector<QuantizedMultiplier>> detail::residual_multipliers(
    const QConv2d& conv, const QParams& residual) {
  std::vector<std::vector<QuantizedMultiplier>> out;
  for (const auto& w : conv.weights) {
    std::vector<QuantizedMultiplier> m;
    for (float ws : w->scales()) {
      const double real = static_cast<double>(residual.scale) /
                          (static_cast<double>(conv.input_qparams.scale) * static_cast<double>(ws));
      m.push_back(quantize_multiplier(real));
    }
    out.push_back(std::move(m));
  }
  return out;
}

// ------------------------------------------------------------- dynamic
QuantizedGraph quantize_dynamic(const Graph& graph, const DynamicConfig& config) {
  check_overrides(config.overrides, graph);
  const Graph g = folded_copy(graph);
  auto impl = std::make_shared<QuantizedGraph::Impl>();
  impl->inputs = g.input_names();
  impl->outputs = g.outputs();
  for (PlanStep& p : make_plan(g, false, config.overrides)) {
    QuantizedGraph::Impl::Step s{p.name, p.inputs, step_op(p, config.overrides), {}, {},
                                 {},     p.covers};
    if (p.quantizable()) {
      QuantizedUnit u = detail::quantize_layer(
          p.covers.front(), p.layer(), p.act,
          granularity_for(p.covers.front(), config.weight_granularity, config.overrides),
          QuantMode::dynamic, {}, {});
      if (auto* l = std::get_if<QLinear>(&u.op)) l->per_row = config.per_row_activations;
      s.op = std::move(u);
    }
    impl->steps.push_back(std::move(s));
  }
  return QuantizedGraph(std::move(impl));
}

// ------------------------------------------------------------- calibration
struct GraphCalibrator::Impl {
  Graph graph;                                                 ///< BatchNorm folded
  std::map<std::string, std::unique_ptr<Observer>> observers;  ///< inputs and every node
  int64_t batches = 0;
  int64_t keep_samples = 0;
  int64_t kept_rows = 0;
  std::vector<std::vector<Tensor>> kept;  ///< leading rows of the first batches, every input
};

GraphCalibrator::GraphCalibrator(const Graph& graph, const CalibrationConfig& config)
    : impl_(std::make_unique<Impl>()) {
  if (graph.size() == 0) fail("GraphCalibrator: the graph has no node");
  impl_->graph = folded_copy(graph);
  impl_->keep_samples = std::max<int64_t>(config.keep_samples, 0);
  std::set<std::string> names(impl_->graph.input_names().begin(), impl_->graph.input_names().end());
  for (const Node& n : impl_->graph.nodes()) names.insert(n.name);
  for (const auto& [name, c] : config.per_layer) {
    if (!names.count(name))
      fail("GraphCalibrator: per_layer names '{}', which is no node or input", name);
  }
  for (const std::string& name : names) {
    auto it = config.per_layer.find(name);
    impl_->observers[name] = detail::make_activation_observer(
        it == config.per_layer.end() ? config.observer : it->second, name);
  }
}

GraphCalibrator::GraphCalibrator(GraphCalibrator&&) noexcept = default;
GraphCalibrator& GraphCalibrator::operator=(GraphCalibrator&&) noexcept = default;
GraphCalibrator::~GraphCalibrator() = default;

void GraphCalibrator::observe(const Tensor& batch) { observe(std::vector<Tensor>{batch}); }

void GraphCalibrator::observe(const std::vector<Tensor>& inputs) {
  Impl& s = *impl_;
  // Run first so that a bad batch leaves the observers untouched.
  std::vector<Tensor> values(s.graph.size());
  s.graph.forward_visit(inputs, [&](std::size_t i, const Tensor& v) { values[i] = v; });
  const int64_t rows = inputs.front().rank() >= 1 ? inputs.front().shape[0] : 0;
  const int64_t take = std::min(rows, s.keep_samples - s.kept_rows);
  if (take > 0) {
    // Kept rows are whole samples: every input must share the batch axis.
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i].rank() < 1 || inputs[i].shape[0] != rows) {
        fail(
            "GraphCalibrator::observe: input '{}' has shape {}; expected {} rows (the batch "
            "axis of input '{}'), to keep samples (CalibrationConfig::keep_samples)",
            s.graph.input_names()[i], shape_to_string(inputs[i].shape), rows,
            s.graph.input_names()[0]);
      }
    }
    std::vector<Tensor> sample;
    for (const Tensor& t : inputs) sample.push_back(detail::leading_rows(t, take));
    s.kept.push_back(std::move(sample));
    s.kept_rows += take;
  }
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    s.observers.at(s.graph.input_names()[i])->observe(inputs[i].data, inputs[i].shape);
  }
  for (std::size_t i = 0; i < values.size(); ++i) {
    s.observers.at(s.graph.nodes()[i].name)->observe(values[i].data, values[i].shape);
  }
  ++s.batches;
}

int64_t GraphCalibrator::batches_observed() const noexcept { return impl_->batches; }

const std::vector<std::vector<Tensor>>& GraphCalibrator::kept_samples() const noexcept {
  return impl_->kept;
}

QParams GraphCalibrator::qparams(const std::string& name) const {
  if (impl_->batches == 0) fail("GraphCalibrator: no batch observed yet; call observe() first");
  auto it = impl_->observers.find(name);
  if (it == impl_->observers.end()) fail("GraphCalibrator: no node or input named '{}'", name);
  return it->second->qparams();
}

// ------------------------------------------------------------- static
namespace {

/// The FP32 value of every input and node of the calibrated (folded) graph
/// on one kept sample, by name.
std::map<std::string, Tensor> fp32_values(const GraphCalibrator& cal,
                                          const std::vector<Tensor>& sample) {
  const Graph& g = cal.impl().graph;
  std::map<std::string, Tensor> values;
  for (std::size_t i = 0; i < sample.size(); ++i) values[g.input_names()[i]] = sample[i];
  g.forward_visit(sample, [&](std::size_t i, const Tensor& v) { values[g.nodes()[i].name] = v; });
  return values;
}

/// A step run alone on the FP32 values of its inputs (and residual).
Tensor isolated_output(const QuantizedGraph::Impl::Step& s,
                       const std::map<std::string, Tensor>& ref) {
  std::vector<Act> in;
  for (const std::string& name : s.inputs) in.push_back(detail::act_from_tensor(ref.at(name)));
  if (s.residual.empty()) return detail::act_to_tensor(run_step(s, std::move(in), nullptr));
  const Act residual = detail::act_from_tensor(ref.at(s.residual));
  return detail::act_to_tensor(run_step(s, std::move(in), &residual));
}

QuantizedGraph build_static(const GraphCalibrator& cal, const StaticConfig& config);

}  // namespace

QuantizedGraph quantize_static(const GraphCalibrator& cal, const StaticConfig& config) {
  if (config.bias_correction) {
    fail(
        "quantize_static(GraphCalibrator): bias_correction is not available for graphs yet "
        "(fallback_sqnr_db and overrides are)");
  }
  if (!config.fallback_sqnr_db) return build_static(cal, config);
  if (cal.kept_samples().empty()) {
    fail(
        "quantize_static: fallback_sqnr_db is set but the calibrator kept no samples "
        "(CalibrationConfig::keep_samples is 0)");
  }
  // Every INT8 step alone on the FP32 values of its inputs, on the kept
  // samples, against the FP32 value it replaces; a Linear/Conv2d below the
  // threshold is then kept FP32 by an override (which also undoes the
  // fusions of its activation and residual, now FP32 steps of their own).
  const QuantizedGraph all = build_static(cal, config);
  const auto& steps = all.impl().steps;
  std::vector<char> int8(steps.size(), 0);
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const auto* u = std::get_if<QuantizedUnit>(&steps[i].op);
    int8[i] =
        u && (std::holds_alternative<QLinear>(u->op) || std::holds_alternative<QConv2d>(u->op));
  }
  std::vector<detail::ErrorSums> sums(steps.size());
  for (const std::vector<Tensor>& sample : cal.kept_samples()) {
    const std::map<std::string, Tensor> ref = fp32_values(cal, sample);
    for (std::size_t i = 0; i < steps.size(); ++i) {
      if (!int8[i]) continue;
      const Tensor iso = isolated_output(steps[i], ref);
      sums[i].add(ref.at(steps[i].name), iso, iso, steps[i].name);
    }
  }
  StaticConfig fallback = config;
  fallback.fallback_sqnr_db.reset();
  bool any = false;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    if (int8[i] && sums[i].error(steps[i].name, {}).isolated_sqnr_db < *config.fallback_sqnr_db) {
      fallback.overrides[steps[i].covers.front()].keep_fp32 = true;
      any = true;
    }
  }
  return any ? build_static(cal, fallback) : all;
}

LayerReport layer_report(const GraphCalibrator& cal, const QuantizedGraph& q) {
  if (cal.kept_samples().empty()) {
    fail(
        "layer_report: the calibrator kept no samples (CalibrationConfig::keep_samples is 0 or "
        "nothing observed)");
  }
  const auto& steps = q.impl().steps;
  std::vector<detail::ErrorSums> sums(steps.size());
  for (const std::vector<Tensor>& sample : cal.kept_samples()) {
    const std::map<std::string, Tensor> ref = fp32_values(cal, sample);
    for (const auto& s : steps) {
      if (!ref.count(s.name)) {
        fail(
            "layer_report: step '{}' of the quantized graph is no node of the calibrated graph; "
            "expected a graph quantized from this calibrator",
            s.name);
      }
    }
    std::vector<Tensor> got(steps.size());
    run_steps(q.impl(), sample,
              [&](std::size_t i, const Act& v) { got[i] = detail::act_to_tensor(v); });
    for (std::size_t i = 0; i < steps.size(); ++i) {
      sums[i].add(ref.at(steps[i].name), got[i], isolated_output(steps[i], ref), steps[i].name);
    }
  }
  LayerReport report;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    report.layers.push_back(sums[i].error(steps[i].name, step_description(steps[i])));
  }
  return report;
}

namespace {

QuantizedGraph build_static(const GraphCalibrator& cal, const StaticConfig& config) {
  const Graph& g = cal.impl().graph;
  check_overrides(config.overrides, g);
  auto impl = std::make_shared<QuantizedGraph::Impl>();
  impl->inputs = g.input_names();
  impl->outputs = g.outputs();
  // Values that stay u8 through pooling/flatten keep their input's qparams.
  std::map<std::string, QParams> qp;
  auto qparams_of = [&](const std::string& name) {
    auto it = qp.find(name);
    return it != qp.end() ? it->second : cal.qparams(name);
  };
  for (PlanStep& p : make_plan(g, true, config.overrides)) {
    QuantizedGraph::Impl::Step s{p.name, p.inputs, step_op(p, config.overrides), p.residual, {},
                                 {},     p.covers};
    if (p.quantizable()) {
      const QParams in = qparams_of(p.inputs.front());
      QuantizedUnit u = detail::quantize_layer(
          p.covers.front(), p.layer(), p.act,
          granularity_for(p.covers.front(), config.weight_granularity, config.overrides),
          QuantMode::static_, in, qparams_of(p.name));
      if (!p.residual.empty()) {
        s.residual_qparams = qparams_of(p.residual);
        s.residual_multipliers =
            detail::residual_multipliers(std::get<QConv2d>(u.op), s.residual_qparams);
      }
      s.op = std::move(u);
    } else if (is_layer(p.op, MaxPool2d{}) || is_layer(p.op, Flatten{})) {
      // Exact on u8 (max commutes with dequantization; flatten moves nothing).
      const Layer& l = p.layer();
      QuantizedUnit u;
      u.name = p.name;
      if (const auto* m = std::get_if<MaxPool2d>(&l)) {
        u.op = *m;
      } else {
        u.op = Flatten{};
      }
      qp[p.name] = qparams_of(p.inputs.front());
      s.op = std::move(u);
    }
    impl->steps.push_back(std::move(s));
  }
  return QuantizedGraph(std::move(impl));
}

}  // namespace

}  // namespace sparq::nn
