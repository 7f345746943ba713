// quantize_dynamic, Calibrator, quantize_static and the layer error report.
#include "sparq/nn/workflow.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "nn/nn_internal.hpp"
#include "sparq/error.hpp"
#include "sparq/observe/histogram.hpp"

namespace sparq::nn {

using detail::granularity_for;
using sparq::detail::fail;

// ------------------------------------------------------------------ shared with graphs
Granularity detail::granularity_for(const std::string& name, Granularity global,
                                    const std::map<std::string, LayerOverride>& overrides) {
  auto it = overrides.find(name);
  return it != overrides.end() && it->second.weight_granularity ? *it->second.weight_granularity
                                                                : global;
}

QuantizedUnit detail::quantize_layer(const std::string& name, const Layer& layer, Activation act,
                                     Granularity gran, QuantMode mode, const QParams& in,
                                     const QParams& out) {
  auto finish = [&](auto q, const Tensor& bias) {
    q.bias = bias.data;
    q.activation = act;
    q.mode = mode;
    q.input_qparams = in;
    q.output_qparams = out;
    q.prepare();
    return QuantizedUnit{name, std::move(q)};
  };
  if (const auto* l = std::get_if<Linear>(&layer)) {
    QLinear ql;
    ql.in_features = l->in_features;
    ql.out_features = l->out_features;
    QuantizedTensor w = quantize_weights(l->weight.data, l->out_features, l->in_features, gran);
    ql.weights = make_dense_weights(std::move(w.values), l->out_features, l->in_features,
                                    std::move(w.scales));
    return finish(std::move(ql), l->bias);
  }
  const auto* c = std::get_if<Conv2d>(&layer);
  if (!c) fail("quantize: layer '{}' ({}) has no INT8 form", name, describe(layer));
  QConv2d qc;
  static_cast<Conv2dGeometry&>(qc) = *c;
  // One quantization of the whole tensor (a per-tensor scale is shared by all groups).
  QuantizedTensor w = quantize_weights(c->weight.data, c->out_channels, c->patch_size(), gran);
  qc.weights = detail::split_groups(w.values, w.scales, *c);
  return finish(std::move(qc), c->bias);
}

// ------------------------------------------------------------------ plan
namespace {

/// One unit of the fused FP32 model: what a QuantizedUnit will replace.
struct PlanUnit {
  enum Kind { linear, conv, pool, flatten, fp32 } kind = fp32;
  std::string name;
  Layer main;  ///< Linear/Conv2d with its BatchNorm folded; MaxPool2d; or the FP32 layer
  Activation act = Activation::none;
  std::vector<Layer> source;  ///< the original layers this unit covers

  bool observed() const { return kind != pool && kind != flatten; }

  Tensor forward(const Tensor& x) const {
    Tensor y = nn::forward(main, x);
    detail::apply_activation(y.data.data(), y.numel(), act);
    return y;
  }
  /// The FP32 layers equivalent to this unit (folded main + activation).
  std::vector<Layer> fp32_layers() const {
    // Built in one initializer list: g++ 12 reports a false -Wstringop-overflow
    // for emplace_back of a variant into a reallocating vector.
    if (act == Activation::relu) return {main, Layer(ReLU{})};
    if (act == Activation::relu6) return {main, Layer(ReLU6{})};
    return {main};
  }
};

std::vector<PlanUnit> make_plan(const Sequential& model) {
  std::vector<PlanUnit> plan;
  const auto& layers = model.layers();
  for (std::size_t i = 0; i < layers.size();) {
    PlanUnit u;
    u.name = std::to_string(i);
    const Layer& l = layers[i];
    std::size_t j = i + 1;
    if (std::holds_alternative<Linear>(l) || std::holds_alternative<Conv2d>(l)) {
      u.kind = std::holds_alternative<Linear>(l) ? PlanUnit::linear : PlanUnit::conv;
      Sequential s;
      s.add(l);
      if (j < layers.size() && std::holds_alternative<BatchNorm>(layers[j])) s.add(layers[j++]);
      fold_batchnorm(s);
      u.main = s[0];
      if (j < layers.size() && std::holds_alternative<ReLU>(layers[j])) {
        u.act = Activation::relu, ++j;
      } else if (j < layers.size() && std::holds_alternative<ReLU6>(layers[j])) {
        u.act = Activation::relu6, ++j;
      }
    } else if (std::holds_alternative<MaxPool2d>(l)) {
      u.kind = PlanUnit::pool;
      u.main = l;
    } else if (std::holds_alternative<Flatten>(l)) {
      u.kind = PlanUnit::flatten;
      u.main = l;
    } else {
      u.kind = PlanUnit::fp32;  // a BatchNorm/ReLU with no Conv/Linear before it
      u.main = l;
    }
    u.source.assign(layers.begin() + static_cast<std::ptrdiff_t>(i),
                    layers.begin() + static_cast<std::ptrdiff_t>(j));
    plan.push_back(std::move(u));
    i = j;
  }
  return plan;
}

void check_overrides(const std::map<std::string, LayerOverride>& overrides,
                     const std::vector<PlanUnit>& plan) {
  for (const auto& [name, o] : overrides) {
    bool found = false;
    std::string names;
    for (const PlanUnit& u : plan) {
      found = found || (u.name == name && (u.kind == PlanUnit::linear || u.kind == PlanUnit::conv));
      if (u.kind == PlanUnit::linear || u.kind == PlanUnit::conv)
        names += (names.empty() ? "" : ", ") + u.name;
    }
    if (!found)
      fail("override '{}' names no Linear/Conv2d unit; quantizable units are: {}", name, names);
  }
}

bool kept_fp32(const std::string& name, const std::map<std::string, LayerOverride>& overrides) {
  auto it = overrides.find(name);
  return it != overrides.end() && it->second.keep_fp32;
}

QuantizedUnit quantize_unit(const PlanUnit& u, Granularity gran, QuantMode mode, const QParams& in,
                            const QParams& out) {
  return detail::quantize_layer(u.name, u.main, u.act, gran, mode, in, out);
}

QuantizedUnit passthrough_unit(const PlanUnit& u, bool fp32) {
  QuantizedUnit q;
  q.name = u.name;
  if (!fp32 && u.kind == PlanUnit::pool) {
    q.op = std::get<MaxPool2d>(u.main);
  } else if (!fp32 && u.kind == PlanUnit::flatten) {
    q.op = Flatten{};
  } else {
    q.op = Fp32Block{u.fp32_layers()};
  }
  return q;
}

std::vector<Tensor> plan_trace(const std::vector<PlanUnit>& plan, const Tensor& x) {
  std::vector<Tensor> out;
  Tensor a = x;
  for (const PlanUnit& u : plan) {
    try {
      a = u.forward(a);
    } catch (const Error& e) {
      fail("FP32 unit '{}' ({}): {}", u.name, describe(u.main), e.what());
    }
    out.push_back(a);
  }
  return out;
}

}  // namespace

// ------------------------------------------------------------------ dynamic
QuantizedModel quantize_dynamic(const Sequential& model, const DynamicConfig& config) {
  const std::vector<PlanUnit> plan = make_plan(model);
  check_overrides(config.overrides, plan);
  std::vector<QuantizedUnit> units;
  for (const PlanUnit& u : plan) {
    if ((u.kind == PlanUnit::linear || u.kind == PlanUnit::conv) &&
        !kept_fp32(u.name, config.overrides)) {
      QuantizedUnit q =
          quantize_unit(u, granularity_for(u.name, config.weight_granularity, config.overrides),
                        QuantMode::dynamic, {}, {});
      units.push_back(std::move(q));
    } else {
      units.push_back(passthrough_unit(u, u.kind == PlanUnit::linear || u.kind == PlanUnit::conv));
    }
  }
  QuantizedModel q(std::move(units));
  if (config.per_row_activations) {
    for (QuantizedUnit& u : q.units()) {
      if (auto* l = std::get_if<QLinear>(&u.op)) l->per_row = true;
    }
  }
  return q;
}

// ------------------------------------------------------------------ calibrator
struct Calibrator::Impl {
  Sequential model;
  std::vector<PlanUnit> plan;
  CalibrationConfig config;
  std::unique_ptr<Observer> input_observer;
  std::vector<std::unique_ptr<Observer>> observers;  ///< per plan unit; null when not observed
  int64_t batches = 0;
  int64_t kept_rows = 0;
  std::vector<Tensor> kept;
  // RangeMethod::automatic: rows held out from the observers.
  bool automatic = false;  ///< some observer uses RangeMethod::automatic
  int64_t rows_seen = 0;
  int64_t held_rows = 0;
  std::vector<Tensor> held;
  // Resolved range choices, [0] the input, [1 + i] plan unit i; recomputed
  // after each observe().
  mutable bool choices_valid = false;
  mutable std::vector<RangeChoice> choices;

  const Observer* observer_at(std::size_t a) const {
    return a == 0 ? input_observer.get() : observers[a - 1].get();
  }
  std::size_t index_of(const std::string& name) const {
    if (name == "input") return 0;
    for (std::size_t i = 0; i < plan.size(); ++i) {
      if (observers[i] && plan[i].name == name) return i + 1;
    }
    fail("Calibrator: no observed activation named '{}'", name);
  }
  void resolve() const;
};

Tensor detail::leading_rows(const Tensor& batch, int64_t take) {
  Tensor t = batch;
  t.shape[0] = take;
  t.data.resize(static_cast<std::size_t>(batch.numel() / batch.shape[0] * take));
  return t;
}

std::unique_ptr<Observer> detail::make_activation_observer(ObserverConfig c,
                                                           const std::string& name) {
  if (c.kind == ObserverKind::per_channel_minmax ||
      c.kind == ObserverKind::moving_average_per_channel_minmax) {
    fail("Calibrator: activation '{}' needs a per-tensor observer (got {})", name,
         observer_kind_name(c.kind));
  }
  c.spec.dtype = DType::u8;
  c.spec.scheme = Scheme::asymmetric;
  c.spec.granularity = Granularity::per_tensor;
  c.spec.narrow_range = false;
  return make_observer(c);
}

Calibrator::Calibrator(const Sequential& model, const CalibrationConfig& config)
    : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.model = model;
  s.plan = make_plan(model);
  s.config = config;
  std::set<std::string> names{"input"};
  auto config_for = [&](const std::string& name) {
    auto it = config.per_layer.find(name);
    return it == config.per_layer.end() ? config.observer : it->second;
  };
  s.input_observer = detail::make_activation_observer(config_for("input"), "input");
  for (const PlanUnit& u : s.plan) {
    if (u.observed()) {
      s.observers.push_back(detail::make_activation_observer(config_for(u.name), u.name));
      names.insert(u.name);
    } else {
      s.observers.push_back(nullptr);
    }
  }
  for (const auto& [name, c] : config.per_layer) {
    if (!names.count(name)) {
      fail(
          "CalibrationConfig::per_layer: '{}' names no observed activation (\"input\" or a unit "
          "name)",
          name);
    }
  }
  if (config.keep_samples < 0)
    fail("CalibrationConfig::keep_samples ({}) must be >= 0", config.keep_samples);
  if (config.holdout_samples < 0)
    fail("CalibrationConfig::holdout_samples ({}) must be >= 0", config.holdout_samples);
  s.automatic = s.input_observer->config().method == RangeMethod::automatic &&
                s.input_observer->config().kind == ObserverKind::histogram;
  for (const auto& o : s.observers) {
    s.automatic = s.automatic || (o && o->config().kind == ObserverKind::histogram &&
                                  o->config().method == RangeMethod::automatic);
  }
}

Calibrator::Calibrator(Calibrator&&) noexcept = default;
Calibrator& Calibrator::operator=(Calibrator&&) noexcept = default;
Calibrator::~Calibrator() = default;

Tensor Calibrator::observe(const Tensor& batch) {
  Impl& s = *impl_;
  if (batch.rank() < 1) fail("Calibrator::observe: the batch must have a batch axis (got rank 0)");
  if (checked_numel(batch.shape, "Calibrator::observe") != batch.numel()) {
    fail("Calibrator::observe: batch has {} values but shape {}", batch.numel(),
         shape_to_string(batch.shape));
  }
  // Run first so that a bad batch leaves the observers untouched.
  const std::vector<Tensor> trace = plan_trace(s.plan, batch);
  const int64_t rows = batch.shape[0];
  // Rows held out for RangeMethod::automatic: every 4th row, counted across
  // batches, until holdout_samples rows are held.
  std::vector<char> hold(static_cast<std::size_t>(std::max<int64_t>(rows, 0)), 0);
  int64_t nhold = 0;
  if (s.automatic) {
    for (int64_t r = 0; r < rows && s.held_rows + nhold < s.config.holdout_samples; ++r) {
      if ((s.rows_seen + r) % 4 == 3) {
        hold[static_cast<std::size_t>(r)] = 1;
        ++nhold;
      }
    }
  }
  // The rows of `t` (batch axis first, `rows` rows) with hold[r] == want.
  auto rows_of = [&](const Tensor& t, char want) {
    Tensor out;
    out.shape = t.shape;
    const std::size_t row = t.data.size() / static_cast<std::size_t>(rows);
    int64_t n = 0;
    for (int64_t r = 0; r < rows; ++r) {
      if (hold[static_cast<std::size_t>(r)] != want) continue;
      const auto* p = t.data.data() + static_cast<std::size_t>(r) * row;
      out.data.insert(out.data.end(), p, p + row);
      ++n;
    }
    out.shape[0] = n;
    return out;
  };
  auto observe_into = [&](Observer& o, const Tensor& t) {
    if (nhold == 0) {
      o.observe(t.data, t.shape);
    } else {
      // Every unit keeps the batch axis first (Sequential of Linear, Conv2d,
      // pooling, Flatten and element-wise layers).
      if (t.rank() < 1 || t.shape[0] != rows) {
        fail("Calibrator::observe: an activation of shape {} lost the batch axis of {} rows",
             shape_to_string(t.shape), rows);
      }
      const Tensor part = rows_of(t, 0);
      o.observe(part.data, part.shape);
    }
  };
  observe_into(*s.input_observer, batch);
  for (std::size_t i = 0; i < s.plan.size(); ++i) {
    if (s.observers[i]) observe_into(*s.observers[i], trace[i]);
  }
  if (nhold > 0) s.held.push_back(rows_of(batch, 1));
  s.held_rows += nhold;
  s.rows_seen += std::max<int64_t>(rows, 0);
  s.choices_valid = false;
  const int64_t take = std::min(rows, s.config.keep_samples - s.kept_rows);
  if (take > 0 && rows > 0) {
    s.kept.push_back(detail::leading_rows(batch, take));
    s.kept_rows += take;
  }
  ++s.batches;
  return trace.empty() ? batch : trace.back();
}

int64_t Calibrator::batches_observed() const noexcept { return impl_->batches; }

std::vector<std::string> Calibrator::activation_names() const {
  std::vector<std::string> out{"input"};
  for (std::size_t i = 0; i < impl_->plan.size(); ++i) {
    if (impl_->observers[i]) out.push_back(impl_->plan[i].name);
  }
  return out;
}

const Observer& Calibrator::observer(const std::string& name) const {
  return *impl_->observer_at(impl_->index_of(name));
}

namespace {

bool is_automatic(const Observer& o) {
  return o.config().kind == ObserverKind::histogram && o.config().method == RangeMethod::automatic;
}

// SQNR of `values` quantized and dequantized with qp (double precision;
// non-finite values skipped).
void add_fake_quant_error(std::span<const float> values, const QParams& qp, const QuantSpec& spec,
                          double& signal, double& noise) {
  const double scale = qp.scale, zp = qp.zero_point;
  const double lo = spec.qmin(), hi = spec.qmax();
  for (float f : values) {
    if (!std::isfinite(f)) continue;
    const double x = f;
    const double q = std::clamp(std::nearbyint(x / scale) + zp, lo, hi);
    const double d = x - (q - zp) * scale;
    signal += x * x;
    noise += d * d;
  }
}

}  // namespace

void Calibrator::Impl::resolve() const {
  if (choices_valid) return;
  const std::size_t n = 1 + plan.size();
  choices.assign(n, RangeChoice{});
  // FP32 activations of the held-out rows.
  std::vector<std::vector<Tensor>> traces;
  for (const Tensor& x : held) traces.push_back(plan_trace(plan, x));
  constexpr RangeMethod kCandidates[] = {RangeMethod::minmax, RangeMethod::mse,
                                         RangeMethod::entropy, RangeMethod::percentile};
  for (std::size_t a = 0; a < n; ++a) {
    const Observer* o = observer_at(a);
    if (!o) continue;
    RangeChoice& c = choices[a];
    c.sqnr_db = std::numeric_limits<double>::quiet_NaN();
    if (!is_automatic(*o)) {
      c.method =
          o->config().kind == ObserverKind::histogram ? o->config().method : RangeMethod::minmax;
      continue;
    }
    const auto& h = static_cast<const HistogramObserver&>(*o);
    if (!h.has_range()) continue;  // qparams() reports it
    if (traces.empty()) {
      const HistogramObserver::AutomaticChoice ac = h.automatic_choice();
      c.method = ac.method;
      c.sqnr_db = ac.sqnr_db;
      continue;
    }
    c.held_out = true;
    c.sqnr_db = -std::numeric_limits<double>::infinity();
    for (RangeMethod m : kCandidates) {
      const auto [lo, hi] = h.range(m);
      const QParams qp = compute_qparams(lo, hi, h.config().spec);
      double signal = 0, noise = 0;
      for (std::size_t b = 0; b < traces.size(); ++b) {
        const Tensor& t = a == 0 ? held[b] : traces[b][a - 1];
        add_fake_quant_error(t.data, qp, h.config().spec, signal, noise);
      }
      const double db =
          noise == 0 ? std::numeric_limits<double>::infinity() : 10.0 * std::log10(signal / noise);
      c.candidates.emplace_back(m, db);
      if (db > c.sqnr_db) {
        c.sqnr_db = db;
        c.method = m;
      }
    }
  }
  choices_valid = true;
}

QParams Calibrator::qparams(const std::string& name) const {
  if (impl_->batches == 0) fail("Calibrator: no batch observed yet; call observe() first");
  const std::size_t a = impl_->index_of(name);
  const Observer& o = *impl_->observer_at(a);
  if (!is_automatic(o)) return o.qparams();
  impl_->resolve();
  const auto& h = static_cast<const HistogramObserver&>(o);
  const auto [lo, hi] = h.range(impl_->choices[a].method);
  return compute_qparams(lo, hi, h.config().spec);
}

RangeChoice Calibrator::range_choice(const std::string& name) const {
  if (impl_->batches == 0) fail("Calibrator: no batch observed yet; call observe() first");
  const std::size_t a = impl_->index_of(name);
  impl_->resolve();
  return impl_->choices[a];
}

int64_t Calibrator::held_out_rows() const noexcept { return impl_->held_rows; }

const Sequential& Calibrator::model() const noexcept { return impl_->model; }
const std::vector<Tensor>& Calibrator::kept_samples() const noexcept { return impl_->kept; }

// ------------------------------------------------------------------ static
namespace {

double isolated_sqnr(const QuantizedUnit& qu, const std::vector<Tensor>& inputs,
                     const std::vector<Tensor>& refs) {
  double signal = 0, noise = 0;
  QuantizedModel one({qu});
  for (std::size_t b = 0; b < inputs.size(); ++b) {
    const Tensor y = one.run_unit(0, inputs[b]);
    for (std::size_t i = 0; i < y.data.size(); ++i) {
      const double r = refs[b].data[i], d = r - y.data[i];
      signal += r * r;
      noise += d * d;
    }
  }
  return noise == 0 ? std::numeric_limits<double>::infinity() : 10.0 * std::log10(signal / noise);
}

// The weights a unit's quantized form will use, dequantized, minus the FP32
// weights; `layer` is a Linear or Conv2d. The bias is then corrected by the
// mean per output channel (last axis of the output) of delta.forward(x).
template <class L>
void correct_bias(L& layer, int64_t n, int64_t k, Granularity gran,
                  const std::vector<Tensor>& inputs) {
  const QuantizedTensor w = quantize_weights(layer.weight.data, n, k, gran);
  L delta = layer;
  delta.bias = Tensor();
  for (std::size_t i = 0; i < delta.weight.data.size(); ++i) {
    const float s = w.scales.size() == 1 ? w.scales[0] : w.scales[i / static_cast<std::size_t>(k)];
    delta.weight.data[i] = static_cast<float>(w.values[i]) * s - layer.weight.data[i];
  }
  std::vector<double> sum(static_cast<std::size_t>(n), 0.0);
  int64_t count = 0;
  for (const Tensor& x : inputs) {
    const Tensor y = delta.forward(x);
    const std::size_t rows = y.data.size() / static_cast<std::size_t>(n);
    for (std::size_t r = 0; r < rows; ++r) {
      for (std::size_t c = 0; c < static_cast<std::size_t>(n); ++c)
        sum[c] += y.data[r * static_cast<std::size_t>(n) + c];
    }
    count += static_cast<int64_t>(rows);
  }
  if (count == 0) return;
  if (layer.bias.empty()) layer.bias = Tensor({n});
  for (std::size_t c = 0; c < sum.size(); ++c) {
    layer.bias.data[c] -= static_cast<float>(sum[c] / static_cast<double>(count));
  }
}

PlanUnit bias_corrected(const PlanUnit& u, Granularity gran, const std::vector<Tensor>& inputs) {
  PlanUnit out = u;
  if (auto* l = std::get_if<Linear>(&out.main)) {
    correct_bias(*l, l->out_features, l->in_features, gran, inputs);
  } else if (auto* c = std::get_if<Conv2d>(&out.main)) {
    correct_bias(*c, c->out_channels, c->patch_size(), gran, inputs);
  }
  return out;
}

QuantizedModel build_static(const std::vector<PlanUnit>& plan, const Calibrator& cal,
                            const StaticConfig& config) {
  if (cal.batches_observed() == 0) fail("quantize_static: the calibrator has observed no batch");
  check_overrides(config.overrides, plan);
  if (config.fallback_sqnr_db && cal.kept_samples().empty()) {
    fail(
        "quantize_static: fallback_sqnr_db is set but the calibrator kept no samples "
        "(CalibrationConfig::keep_samples is 0)");
  }
  if (config.bias_correction && cal.kept_samples().empty()) {
    fail(
        "quantize_static: bias_correction is set but the calibrator kept no samples "
        "(CalibrationConfig::keep_samples is 0)");
  }
  // FP32 input/output of every unit on the kept samples, for the fallback
  // and the bias correction.
  std::vector<std::vector<Tensor>> traces;  // [batch][unit]
  if (config.fallback_sqnr_db || config.bias_correction) {
    for (const Tensor& x : cal.kept_samples()) traces.push_back(plan_trace(plan, x));
  }
  std::vector<QuantizedUnit> units;
  QParams current = cal.qparams("input");
  for (std::size_t i = 0; i < plan.size(); ++i) {
    const PlanUnit& u = plan[i];
    const QParams out = u.observed() ? cal.qparams(u.name) : current;
    if ((u.kind == PlanUnit::linear || u.kind == PlanUnit::conv) &&
        !kept_fp32(u.name, config.overrides)) {
      const Granularity gran = granularity_for(u.name, config.weight_granularity, config.overrides);
      PlanUnit corrected;
      if (config.bias_correction) {
        std::vector<Tensor> inputs;
        for (std::size_t b = 0; b < traces.size(); ++b) {
          inputs.push_back(i == 0 ? cal.kept_samples()[b] : traces[b][i - 1]);
        }
        corrected = bias_corrected(u, gran, inputs);
      }
      QuantizedUnit q = quantize_unit(config.bias_correction ? corrected : u, gran,
                                      QuantMode::static_, current, out);
      bool keep = false;
      if (config.fallback_sqnr_db) {
        std::vector<Tensor> inputs, refs;
        for (std::size_t b = 0; b < traces.size(); ++b) {
          inputs.push_back(i == 0 ? cal.kept_samples()[b] : traces[b][i - 1]);
          refs.push_back(traces[b][i]);
        }
        keep = isolated_sqnr(q, inputs, refs) < *config.fallback_sqnr_db;
      }
      units.push_back(keep ? passthrough_unit(u, true) : std::move(q));
    } else {
      units.push_back(passthrough_unit(u, u.kind != PlanUnit::pool && u.kind != PlanUnit::flatten));
    }
    current = out;
  }
  return QuantizedModel(std::move(units));
}

}  // namespace

QuantizedModel quantize_static(const Calibrator& cal, const StaticConfig& config) {
  return build_static(cal.impl().plan, cal, config);
}

QuantizedModel quantize_static(const Sequential& model, const Calibrator& cal,
                               const StaticConfig& config) {
  const Sequential& ref = cal.model();
  bool same = ref.size() == model.size();
  for (std::size_t i = 0; same && i < model.size(); ++i)
    same = describe(ref[i]) == describe(model[i]);
  if (!same) {
    fail(
        "quantize_static: the model's architecture differs from the calibrated one:\n{}\nvs "
        "calibrated:\n{}",
        model.summary(), ref.summary());
  }
  return build_static(make_plan(model), cal, config);
}

// ------------------------------------------------------------------ equalization
namespace {

// Largest |w| of each output channel of a Linear/Conv2d ([out][patch]).
std::vector<double> output_ranges(const Tensor& w, int64_t out) {
  const std::size_t per = w.data.size() / static_cast<std::size_t>(out);
  std::vector<double> r(static_cast<std::size_t>(out), 0.0);
  for (std::size_t i = 0; i < w.data.size(); ++i)
    r[i / per] = std::max(r[i / per], static_cast<double>(std::fabs(w.data[i])));
  return r;
}

// Calls f(weight index, input channel) for every weight of the layer.
template <class F>
void for_each_input_weight(const Layer& l, F f) {
  if (const auto* lin = std::get_if<Linear>(&l)) {
    for (std::size_t i = 0; i < lin->weight.data.size(); ++i)
      f(i, static_cast<int64_t>(i % static_cast<std::size_t>(lin->in_features)));
    return;
  }
  const auto& c = std::get<Conv2d>(l);
  const int64_t cg = c.in_channels / c.groups, og = c.out_channels / c.groups;
  const std::size_t per = static_cast<std::size_t>(c.patch_size());
  for (std::size_t i = 0; i < c.weight.data.size(); ++i) {
    const auto o = static_cast<int64_t>(i / per);
    const auto local = static_cast<int64_t>(i % static_cast<std::size_t>(cg));
    f(i, (o / og) * cg + local);  // [out][kh][kw][in/groups]: group of o, then local channel
  }
}

Tensor& weight_of(Layer& l) {
  if (auto* lin = std::get_if<Linear>(&l)) return lin->weight;
  return std::get<Conv2d>(l).weight;
}

int64_t outputs_of(const Layer& l) {
  if (const auto* lin = std::get_if<Linear>(&l)) return lin->out_features;
  return std::get<Conv2d>(l).out_channels;
}

int64_t inputs_of(const Layer& l) {
  if (const auto* lin = std::get_if<Linear>(&l)) return lin->in_features;
  return std::get<Conv2d>(l).in_channels;
}

bool weighted(const Layer& l) {
  return std::holds_alternative<Linear>(l) || std::holds_alternative<Conv2d>(l);
}

}  // namespace

Sequential equalize_cross_layer(const Sequential& model, int* pairs) {
  Sequential m = model;
  fold_batchnorm(m);
  int count = 0;
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (!weighted(m[i])) continue;
    std::size_t j = i + 1;
    if (j >= m.size() || !std::holds_alternative<ReLU>(m[j])) continue;
    ++j;
    if (j < m.size() && std::holds_alternative<MaxPool2d>(m[j])) ++j;
    if (j >= m.size() || !weighted(m[j])) continue;
    Layer& a = m[i];
    Layer& b = m[j];
    const int64_t channels = outputs_of(a);
    if (inputs_of(b) != channels) continue;  // not a channel-to-channel pair (e.g. after Flatten)
    const std::vector<double> r1 = output_ranges(weight_of(a), channels);
    std::vector<double> r2(static_cast<std::size_t>(channels), 0.0);
    const Tensor& wb = weight_of(b);
    for_each_input_weight(b, [&](std::size_t k, int64_t ch) {
      r2[static_cast<std::size_t>(ch)] =
          std::max(r2[static_cast<std::size_t>(ch)], static_cast<double>(std::fabs(wb.data[k])));
    });
    std::vector<double> s(static_cast<std::size_t>(channels), 1.0);
    for (std::size_t c = 0; c < s.size(); ++c) {
      if (r1[c] > 0 && r2[c] > 0) s[c] = std::sqrt(r1[c] / r2[c]);
    }
    Tensor& wa = weight_of(a);
    const std::size_t per = wa.data.size() / static_cast<std::size_t>(channels);
    for (std::size_t k = 0; k < wa.data.size(); ++k)
      wa.data[k] = static_cast<float>(wa.data[k] / s[k / per]);
    Tensor& bias =
        std::holds_alternative<Linear>(a) ? std::get<Linear>(a).bias : std::get<Conv2d>(a).bias;
    for (std::size_t c = 0; c < bias.data.size(); ++c)
      bias.data[c] = static_cast<float>(bias.data[c] / s[c]);
    Tensor& wbm = weight_of(b);
    for_each_input_weight(b, [&](std::size_t k, int64_t ch) {
      wbm.data[k] = static_cast<float>(wbm.data[k] * s[static_cast<std::size_t>(ch)]);
    });
    ++count;
  }
  if (pairs) *pairs = count;
  return m;
}

// ------------------------------------------------------------------ accuracy
std::vector<int64_t> argmax(const Tensor& scores) {
  if (checked_numel(scores.shape, "argmax") != scores.numel()) {
    fail("argmax: scores have {} values but shape {}", scores.numel(),
         shape_to_string(scores.shape));
  }
  return argmax(TensorView(scores));
}

std::vector<int64_t> argmax(TensorView scores) {
  if (scores.shape.empty()) fail("argmax: scores must have a batch axis (got rank 0)");
  const int64_t rows = scores.shape[0];
  const int64_t count = checked_numel(scores.shape, "argmax");
  std::vector<int64_t> out(static_cast<std::size_t>(rows));
  if (rows == 0) return out;
  const std::size_t width = static_cast<std::size_t>(count / rows);
  if (width == 0)
    fail("argmax: scores of shape {} have no score per row", shape_to_string(scores.shape));
  if (scores.data == nullptr)
    fail("argmax: scores.data is null with shape {}", shape_to_string(scores.shape));
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = scores.data + static_cast<std::size_t>(r) * width;
    std::size_t best = 0;
    for (std::size_t j = 0; j < width; ++j) {
      if (std::isnan(p[j])) fail("argmax: row {} has a NaN score at index {}", r, j);
      if (p[j] > p[best]) best = j;
    }
    out[static_cast<std::size_t>(r)] = static_cast<int64_t>(best);
  }
  return out;
}

double accuracy(std::span<const int64_t> predictions, std::span<const int64_t> labels) {
  if (predictions.size() != labels.size()) {
    fail("accuracy: {} predictions but {} labels; expected one label per row", predictions.size(),
         labels.size());
  }
  if (labels.empty()) fail("accuracy: no rows (0 labels); expected at least one");
  std::size_t hits = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) hits += predictions[i] == labels[i];
  return static_cast<double>(hits) / static_cast<double>(labels.size());
}

double accuracy(const Tensor& scores, std::span<const int64_t> labels) {
  return accuracy(argmax(scores), labels);
}

double accuracy(const Tensor& scores, std::span<const uint8_t> labels) {
  const std::vector<int64_t> l(labels.begin(), labels.end());
  return accuracy(argmax(scores), l);
}

// ------------------------------------------------------------------ report
double sqnr_db(std::span<const float> reference, std::span<const float> test) {
  if (reference.size() != test.size()) {
    fail("sqnr_db: reference has {} values but test has {}", reference.size(), test.size());
  }
  double signal = 0, noise = 0;
  for (std::size_t i = 0; i < reference.size(); ++i) {
    const double r = reference[i], d = r - static_cast<double>(test[i]);
    signal += r * r;
    noise += d * d;
  }
  if (noise == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal / noise);
}

void detail::ErrorSums::add(const Tensor& ref, const Tensor& got, const Tensor& iso,
                            const std::string& name) {
  if (ref.data.size() != got.data.size() || iso.data.size() != ref.data.size()) {
    fail("layer_report: unit '{}' output sizes differ between FP32 and quantized", name);
  }
  for (std::size_t j = 0; j < ref.data.size(); ++j) {
    const double r = ref.data[j], t = got.data[j], s = iso.data[j];
    signal += r * r;
    noise += (r - t) * (r - t);
    dot += r * t;
    test2 += t * t;
    max_abs = std::max(max_abs, std::fabs(r - t));
    iso_noise += (r - s) * (r - s);
  }
}

LayerError detail::ErrorSums::error(std::string name, std::string description) const {
  auto db = [](double signal, double noise) {
    return noise == 0 ? std::numeric_limits<double>::infinity() : 10.0 * std::log10(signal / noise);
  };
  LayerError e;
  e.name = std::move(name);
  e.description = std::move(description);
  e.sqnr_db = db(signal, noise);
  e.isolated_sqnr_db = db(signal, iso_noise);
  // Two all-zero tensors are identical: cosine 1 by convention.
  e.cosine = signal == 0 && test2 == 0     ? 1.0
             : (signal == 0 || test2 == 0) ? 0.0
                                           : dot / std::sqrt(signal * test2);
  e.max_abs_error = max_abs;
  return e;
}

LayerReport layer_report(const Sequential& fp32, const QuantizedModel& q,
                         std::span<const Tensor> batches) {
  const std::vector<PlanUnit> plan = make_plan(fp32);
  const auto& units = q.units();
  bool match = plan.size() == units.size();
  for (std::size_t i = 0; match && i < plan.size(); ++i) match = plan[i].name == units[i].name;
  if (!match) {
    fail("layer_report: the quantized model's units do not match the FP32 model's ({} vs {} units)",
         units.size(), plan.size());
  }
  std::vector<detail::ErrorSums> acc(plan.size());
  for (const Tensor& x : batches) {
    const std::vector<Tensor> ref = plan_trace(plan, x);
    const std::vector<Tensor> got = q.forward_trace(x);
    for (std::size_t i = 0; i < plan.size(); ++i) {
      const Tensor iso = q.run_unit(i, i == 0 ? x : ref[i - 1]);
      acc[i].add(ref[i], got[i], iso, plan[i].name);
    }
  }
  LayerReport report;
  for (std::size_t i = 0; i < plan.size(); ++i) {
    report.layers.push_back(acc[i].error(units[i].name, units[i].describe()));
  }
  return report;
}

LayerReport layer_report(const Calibrator& cal, const QuantizedModel& q) {
  if (cal.kept_samples().empty()) {
    fail(
        "layer_report: the calibrator kept no samples (CalibrationConfig::keep_samples is 0 or "
        "nothing observed)");
  }
  LayerReport report = layer_report(cal.model(), q, cal.kept_samples());
  const std::vector<std::string> names = cal.activation_names();
  for (LayerError& e : report.layers) {
    if (std::find(names.begin(), names.end(), e.name) == names.end()) continue;
    const RangeChoice c = cal.range_choice(e.name);
    const Observer& o = cal.observer(e.name);
    e.range_method = o.config().kind == ObserverKind::histogram
                         ? std::string(range_method_name(c.method))
                         : std::string(observer_kind_name(o.config().kind));
    if (is_automatic(o)) {
      e.range_method = "auto:" + e.range_method;
      e.range_sqnr_db = c.sqnr_db;
    }
  }
  return report;
}

std::string LayerReport::table() const {
  std::size_t worst = layers.size();
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const bool quantized = layers[i].description.rfind("Q", 0) == 0;
    if (quantized && (worst == layers.size() || layers[i].sqnr_db < layers[worst].sqnr_db))
      worst = i;
  }
  std::size_t width = 5;
  bool ranges = false;  // a column for the range method when a calibrator reported them
  for (const LayerError& e : layers) {
    width = std::max(width, e.description.size());
    ranges = ranges || !e.range_method.empty();
  }
  std::string s = fmt::format("{:<5} {:<{}} {:>10} {:>12} {:>9} {:>12}", "unit", "layer", width,
                              "SQNR dB", "alone SQNR", "cosine", "max |err|");
  if (ranges) s += fmt::format("  {:<18} {:>10}", "output range", "held-out dB");
  s += "\n";
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const LayerError& e = layers[i];
    s += fmt::format("{:<5} {:<{}} {:>10.2f} {:>12.2f} {:>9.6f} {:>12.6g}", e.name, e.description,
                     width, e.sqnr_db, e.isolated_sqnr_db, e.cosine, e.max_abs_error);
    if (ranges) {
      s += fmt::format(
          "  {:<18} {:>10}", e.range_method.empty() ? "-" : e.range_method,
          std::isnan(e.range_sqnr_db) ? std::string("-") : fmt::format("{:.2f}", e.range_sqnr_db));
    }
    s += i == worst ? "  <- worst\n" : "\n";
  }
  return s;
}

}  // namespace sparq::nn
