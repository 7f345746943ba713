// SmoothQuant for the Linear nodes of an FP32 graph (sparq/nn/smoothquant.hpp):
// calibration of per-channel ranges, the alpha search on held-out batches,
// and the exact folding of x / s.
#include "sparq/nn/smoothquant.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "nn/nn_internal.hpp"
#include "sparq/error.hpp"
#include "sparq/nn/graph.hpp"
#include "sparq/nn/workflow.hpp"

namespace sparq::nn {

using sparq::detail::fail;

// ------------------------------------------------------------- ChannelScale
ChannelScale::ChannelScale(int64_t channels) {
  if (channels < 1) fail("ChannelScale: channels ({}) must be >= 1", channels);
  scale = Tensor({channels}, std::vector<float>(static_cast<std::size_t>(channels), 1.0f));
}

std::string ChannelScale::describe() const {
  return fmt::format("ChannelScale({})", scale.numel());
}

Tensor ChannelScale::forward(const Tensor& x) const {
  const int64_t c = scale.numel();
  if (x.rank() < 1 || x.shape.back() != c) {
    fail("ChannelScale: input shape {} must have {} channels on its last axis",
         shape_to_string(x.shape), c);
  }
  Tensor y = x;
  // Row by row: no division per element (this runs on every call of a
  // smoothed INT8 graph, before the Linear it feeds).
  const std::size_t channels = scale.data.size();
  for (std::size_t row = 0; row < y.data.size(); row += channels) {
    float* out = y.data.data() + row;
    for (std::size_t j = 0; j < channels; ++j) out[j] *= scale.data[j];
  }
  return y;
}

void ChannelScale::for_each_param(const ParamVisitor& f) { f("scale", scale); }

void ChannelScale::init_parameters(std::mt19937_64&) {
  std::fill(scale.data.begin(), scale.data.end(), 1.0f);
}

// ------------------------------------------------------------- smooth_quant
namespace {

/// Per-channel min and max over the last axis of every tensor seen.
struct ChannelRange {
  std::vector<float> min, max;

  void update(const Tensor& t) {
    const std::size_t c = static_cast<std::size_t>(t.shape.back());
    if (min.empty()) {
      min.assign(c, std::numeric_limits<float>::infinity());
      max.assign(c, -std::numeric_limits<float>::infinity());
    }
    for (std::size_t i = 0; i < t.data.size(); ++i) {
      min[i % c] = std::min(min[i % c], t.data[i]);
      max[i % c] = std::max(max[i % c], t.data[i]);
    }
  }
  /// The per-tensor range of the values divided by s (channel-wise, s > 0).
  std::pair<float, float> scaled_range(const std::vector<float>& s) const {
    float lo = 0, hi = 0;  // u8 qparams always cover 0
    for (std::size_t j = 0; j < min.size(); ++j) {
      lo = std::min(lo, min[j] / s[j]);
      hi = std::max(hi, max[j] / s[j]);
    }
    return {lo, hi};
  }
  float abs_max(std::size_t j) const { return std::max(std::fabs(min[j]), std::fabs(max[j])); }
};

Linear& linear_of(Graph& g, const std::string& name) {
  return std::get<Linear>(std::get<Layer>(g.op(name)));
}

const Linear* as_linear(const NodeOp& op) {
  const auto* l = std::get_if<Layer>(&op);
  return l ? std::get_if<Linear>(l) : nullptr;
}

void check_options(const SmoothQuantOptions& o, std::size_t batches) {
  if (o.alphas.empty()) fail("smooth_quant: options.alphas must hold at least one alpha");
  for (double a : o.alphas) {
    if (!(a >= 0.0 && a <= 1.0))
      fail("smooth_quant: options.alphas has {}; each must be in [0, 1]", a);
  }
  if (!(o.min_scale > 0.0 && o.min_scale <= 1.0)) {
    fail("smooth_quant: options.min_scale ({}) must be in (0, 1]", o.min_scale);
  }
  if (!(o.max_scale >= 1.0 && std::isfinite(o.max_scale))) {
    fail("smooth_quant: options.max_scale ({}) must be finite and >= 1", o.max_scale);
  }
  if (o.held_out_batches < 0) {
    fail("smooth_quant: options.held_out_batches ({}) must be >= 0", o.held_out_batches);
  }
  if (static_cast<int64_t>(batches) < o.held_out_batches + 1) {
    fail(
        "smooth_quant: calibration has {} batch(es); options.held_out_batches ({}) needs at least "
        "{} (one or more for the statistics)",
        batches, o.held_out_batches, o.held_out_batches + 1);
  }
}

/// What the graph tells about one activation.
struct Group {
  std::string input;                 ///< the activation the Linears read
  std::vector<std::string> linears;  ///< in graph order
  ChannelRange range;                ///< statistics batches
  std::vector<Tensor> held_out;      ///< the activation on the held-out batches
};

/// Where x / s can be folded exactly, found by walking back from x.
struct FoldTarget {
  std::string node;  ///< a Linear (output channels) or a LayerNorm (weight, bias)
  std::string via;   ///< the pass-through nodes walked, for the report
};

class Smoother {
 public:
  Smoother(Graph& g, const SmoothQuantOptions& o) : g_(g), options_(o) {
    for (std::size_t i = 0; i < g.size(); ++i) {
      const Node& n = g.nodes()[i];
      for (std::size_t k = 0; k < n.inputs.size(); ++k) readers_[n.inputs[k]].push_back({i, k});
      if (as_linear(n.op)) {
        auto it = std::find_if(groups_.begin(), groups_.end(),
                               [&](const Group& gr) { return gr.input == n.inputs[0]; });
        if (it == groups_.end()) {
          groups_.push_back({n.inputs[0], {}, {}, {}});
          it = groups_.end() - 1;
        }
        it->linears.push_back(n.name);
      }
    }
    if (groups_.empty()) fail("smooth_quant: the graph has no Linear node");
    outputs_.insert(g.outputs().begin(), g.outputs().end());
  }

  void calibrate(const std::vector<std::vector<Tensor>>& batches) {
    std::map<std::string, Group*> by_input;
    for (Group& gr : groups_) by_input[gr.input] = &gr;
    rank_.assign(g_.size(), 0);
    const std::size_t stats = batches.size() - static_cast<std::size_t>(options_.held_out_batches);
    // With no held-out batch, the statistics batches are the scoring rows too.
    const bool score_on_stats = options_.held_out_batches == 0;
    for (std::size_t b = 0; b < batches.size(); ++b) {
      const bool held_out = b >= stats;
      auto record = [&](const std::string& name, const Tensor& v) {
        auto it = by_input.find(name);
        if (it == by_input.end()) return;
        if (!held_out) it->second->range.update(v);
        if (held_out || score_on_stats) it->second->held_out.push_back(v);
      };
      if (batches[b].size() != g_.input_names().size()) {
        fail("smooth_quant: calibration batch {} has {} tensor(s); the graph takes {}", b,
             batches[b].size(), g_.input_names().size());
      }
      for (std::size_t k = 0; k < batches[b].size(); ++k) {
        record(g_.input_names()[k], batches[b][k]);
      }
      g_.forward_visit(batches[b], [&](std::size_t i, const Tensor& v) {
        const Node& n = g_.nodes()[i];
        rank_[i] = v.rank();
        record(n.name, v);
        if (!held_out && as_linear(n.op)) output_range_[n.name].update(v);
      });
    }
  }

  SmoothQuantReport run(const std::vector<std::vector<Tensor>>& batches) {
    calibrate(batches);
    std::vector<SmoothQuantLayer> layers(groups_.size());
    for (std::size_t k = groups_.size(); k-- > 0;) layers[k] = smooth(groups_[k]);
    insert_channel_scales();
    return SmoothQuantReport{std::move(layers)};
  }

 private:
  struct Reader {
    std::size_t node, position;
  };

  std::vector<float> factors(const Group& gr, double alpha) const {
    const std::size_t c = gr.range.min.size();
    std::vector<float> w_max(c, 0.0f);
    for (const std::string& name : gr.linears) {
      const Linear& l = *as_linear(g_.node(name).op);
      for (std::size_t i = 0; i < l.weight.data.size(); ++i) {
        w_max[i % c] = std::max(w_max[i % c], std::fabs(l.weight.data[i]));
      }
    }
    std::vector<float> s(c, 1.0f);
    for (std::size_t j = 0; j < c; ++j) {
      const double a = gr.range.abs_max(j);
      if (a == 0.0 || w_max[j] == 0.0f) continue;  // nothing to balance: s = 1
      const double v = std::pow(a, alpha) / std::pow(static_cast<double>(w_max[j]), 1.0 - alpha);
      s[j] = static_cast<float>(std::clamp(v, options_.min_scale, options_.max_scale));
    }
    return s;
  }

  /// Static INT8 output SQNR of the group's Linears with weights W * s on
  /// inputs x / s (held-out rows), against their FP32 outputs.
  double score(const Group& gr, const std::vector<float>& s) const {
    const auto [lo, hi] = gr.range.scaled_range(s);
    const QParams in_qp =
        compute_qparams(lo, hi, {.dtype = DType::u8, .scheme = Scheme::asymmetric});
    std::vector<Tensor> scaled_inputs = gr.held_out;
    for (Tensor& x : scaled_inputs) {
      for (std::size_t i = 0; i < x.data.size(); ++i) x.data[i] /= s[i % s.size()];
    }
    std::vector<float> reference, quantized;
    for (const std::string& name : gr.linears) {
      const Linear& fp32 = *as_linear(g_.node(name).op);
      Linear smoothed = fp32;
      for (std::size_t i = 0; i < smoothed.weight.data.size(); ++i) {
        smoothed.weight.data[i] *= s[i % s.size()];
      }
      const ChannelRange& out = output_range_.at(name);
      const QParams out_qp =
          compute_qparams(std::min(0.0f, *std::min_element(out.min.begin(), out.min.end())),
                          std::max(0.0f, *std::max_element(out.max.begin(), out.max.end())),
                          {.dtype = DType::u8, .scheme = Scheme::asymmetric});
      const QuantizedUnit unit =
          detail::quantize_layer(name, Layer(smoothed), Activation::none, Granularity::per_channel,
                                 QuantMode::static_, in_qp, out_qp);
      for (std::size_t b = 0; b < gr.held_out.size(); ++b) {
        const Tensor y = fp32.forward(gr.held_out[b]);
        const Tensor q = detail::act_to_tensor(
            detail::run_unit_act(unit, detail::act_from_tensor(scaled_inputs[b])));
        reference.insert(reference.end(), y.data.begin(), y.data.end());
        quantized.insert(quantized.end(), q.data.begin(), q.data.end());
      }
    }
    return sqnr_db(reference, quantized);
  }

  /// The nodes that read `name` are exactly `accepted` (each once) and it is no output.
  bool read_only_by(const std::string& name, const std::set<std::size_t>& accepted) const {
    if (outputs_.count(name)) return false;
    auto it = readers_.find(name);
    if (it == readers_.end() || it->second.size() != accepted.size()) return false;
    std::set<std::size_t> seen;
    for (const Reader& r : it->second) {
      if (!accepted.count(r.node) || !seen.insert(r.node).second) return false;
    }
    return true;
  }

  std::optional<FoldTarget> find_fold(const std::string& x, const std::set<std::size_t>& accepted,
                                      std::string via) const {
    const int64_t index = g_.find(x);
    if (index < 0 || !read_only_by(x, accepted)) return std::nullopt;  // a graph input, or shared
    const std::size_t i = static_cast<std::size_t>(index);
    const Node& n = g_.nodes()[i];
    if (as_linear(n.op) || std::holds_alternative<LayerNorm>(n.op)) return FoldTarget{x, via};
    const std::string through = via.empty() ? "" : ", ";
    if (const auto* attention = std::get_if<Attention>(&n.op)) {
      (void)attention;
      // Scaling channel j of v scales channel j of the output (P v is
      // linear in each column of v); q, k and the mask must not be v.
      const std::string& v = n.inputs[2];
      for (std::size_t k = 0; k < n.inputs.size(); ++k) {
        if (k != 2 && n.inputs[k] == v) return std::nullopt;
      }
      return find_fold(v, {i}, via + through + fmt::format("through Attention '{}'", x));
    }
    if (const auto* mean = std::get_if<Mean>(&n.op)) {
      const int64_t rank = rank_[i] + 1;  // the input's rank: Mean drops one axis
      const int64_t axis = mean->axis < 0 ? mean->axis + rank : mean->axis;
      if (axis == rank - 1) return std::nullopt;  // averages the channels together
      return find_fold(n.inputs[0], {i}, via + through + fmt::format("through Mean '{}'", x));
    }
    return std::nullopt;
  }

  SmoothQuantLayer smooth(Group& gr) {
    SmoothQuantLayer r;
    r.linears = gr.linears;
    r.input = gr.input;
    const std::size_t c = gr.range.min.size();
    const std::vector<float> ones(c, 1.0f);
    auto channel_stats = [&](const std::vector<float>& s, float& max_abs, float& ratio) {
      float lo = std::numeric_limits<float>::infinity(), hi = 0;
      for (std::size_t j = 0; j < c; ++j) {
        const float a = gr.range.abs_max(j) / s[j];
        hi = std::max(hi, a);
        if (a > 0) lo = std::min(lo, a);
      }
      max_abs = hi;
      ratio = hi > 0 ? hi / lo : 0.0f;
    };
    channel_stats(ones, r.max_abs_before, r.channel_ratio_before);
    r.sqnr_db_unsmoothed = score(gr, ones);
    double best = r.sqnr_db_unsmoothed;
    std::vector<float> best_s = ones;
    for (double alpha : options_.alphas) {
      std::vector<float> s = factors(gr, alpha);
      const double q = score(gr, s);
      if (q > best) {
        best = q;
        best_s = std::move(s);
        r.smoothed = true;
        r.alpha = alpha;
      }
    }
    r.sqnr_db_smoothed = best;
    channel_stats(best_s, r.max_abs_after, r.channel_ratio_after);
    r.folded_into = "-";
    if (!r.smoothed) return r;

    for (const std::string& name : gr.linears) {
      Linear& l = linear_of(g_, name);
      for (std::size_t i = 0; i < l.weight.data.size(); ++i) l.weight.data[i] *= best_s[i % c];
    }
    std::set<std::size_t> group_nodes;
    for (const std::string& name : gr.linears)
      group_nodes.insert(static_cast<std::size_t>(g_.find(name)));
    const std::optional<FoldTarget> target = find_fold(gr.input, group_nodes, "");
    const std::string via = target && !target->via.empty() ? ", " + target->via : "";
    if (target && as_linear(g_.node(target->node).op)) {
      // Output channel o of the producer: weight row o and bias o over s_o.
      Linear& p = linear_of(g_, target->node);
      for (std::size_t i = 0; i < p.weight.data.size(); ++i) {
        p.weight.data[i] /= best_s[i / static_cast<std::size_t>(p.in_features)];
      }
      for (std::size_t o = 0; o < p.bias.data.size(); ++o) p.bias.data[o] /= best_s[o];
      ChannelRange& out = output_range_.at(target->node);
      for (std::size_t o = 0; o < c; ++o) {
        out.min[o] /= best_s[o];
        out.max[o] /= best_s[o];
      }
      r.folded_into = fmt::format("Linear '{}' (output channels{})", target->node, via);
    } else if (target) {
      auto& ln = std::get<LayerNorm>(g_.op(target->node));
      for (std::size_t j = 0; j < c; ++j) {
        ln.weight.data[j] /= best_s[j];
        ln.bias.data[j] /= best_s[j];
      }
      r.folded_into = fmt::format("LayerNorm '{}' (weight, bias{})", target->node, via);
    } else {
      std::string name = gr.input + ".smooth";
      for (int k = 2; g_.find(name) >= 0 || taken_.count(name); ++k) {
        name = fmt::format("{}.smooth{}", gr.input, k);
      }
      taken_.insert(name);
      ChannelScale scale(static_cast<int64_t>(c));
      for (std::size_t j = 0; j < c; ++j) scale.scale.data[j] = 1.0f / best_s[j];
      inserts_.push_back({name, std::move(scale), gr.input, gr.linears});
      r.folded_into = fmt::format("ChannelScale '{}' (new node)", name);
    }
    return r;
  }

  /// Rebuilds the graph with each new ChannelScale node just before the
  /// first Linear that reads it.
  void insert_channel_scales() {
    if (inserts_.empty()) return;
    std::map<std::string, const Insert*> before, reads;
    for (const Insert& ins : inserts_) {
      before[ins.linears.front()] = &ins;
      for (const std::string& l : ins.linears) reads[l] = &ins;
    }
    Graph out(g_.input_names());
    for (const Node& n : g_.nodes()) {
      if (auto it = before.find(n.name); it != before.end()) {
        out.add(it->second->name, it->second->scale, {it->second->input});
      }
      std::vector<std::string> inputs = n.inputs;
      if (auto it = reads.find(n.name); it != reads.end()) inputs = {it->second->name};
      out.add(n.name, n.op, std::move(inputs));
    }
    out.set_outputs(g_.outputs());
    g_ = std::move(out);
  }

  struct Insert {
    std::string name;
    ChannelScale scale;
    std::string input;
    std::vector<std::string> linears;
  };

  Graph& g_;
  const SmoothQuantOptions& options_;
  std::vector<Group> groups_;
  std::map<std::string, std::vector<Reader>> readers_;
  std::set<std::string> outputs_;
  std::vector<int> rank_;                             ///< rank of each node's output
  std::map<std::string, ChannelRange> output_range_;  ///< Linear outputs, statistics batches
  std::vector<Insert> inserts_;
  std::set<std::string> taken_;
};

}  // namespace

std::string SmoothQuantReport::table() const {
  // A group's first Linear names it ("+2": two more read the same input).
  auto label = [](const SmoothQuantLayer& l) {
    return l.linears.size() > 1 ? fmt::format("{} +{}", l.linears.front(), l.linears.size() - 1)
                                : l.linears.front();
  };
  std::size_t width = 8;
  for (const SmoothQuantLayer& l : layers) width = std::max(width, label(l).size() + 2);
  std::string s = fmt::format("{:<{}}{:>6} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}  {}\n", "linear",
                              width, "alpha", "max|x|", "max|x/s|", "ratio", "ratio/s", "SQNR dB",
                              "smoothed", "x / s folded into");
  for (const SmoothQuantLayer& l : layers) {
    s +=
        fmt::format("{:<{}}{:>6} {:>9.3g} {:>9.3g} {:>9.3g} {:>9.3g} {:>10.2f} {:>10.2f}  {}\n",
                    label(l), width, l.smoothed ? fmt::format("{:.2f}", l.alpha) : "-",
                    l.max_abs_before, l.max_abs_after, l.channel_ratio_before,
                    l.channel_ratio_after, l.sqnr_db_unsmoothed, l.sqnr_db_smoothed, l.folded_into);
  }
  return s;
}

SmoothQuantReport smooth_quant(Graph& graph, const std::vector<std::vector<Tensor>>& calibration,
                               const SmoothQuantOptions& options) {
  check_options(options, calibration.size());
  Smoother smoother(graph, options);
  return smoother.run(calibration);
}

}  // namespace sparq::nn
