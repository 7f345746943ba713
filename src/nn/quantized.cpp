// QuantizedModel: a chain of quantized units (quantized_layers.cpp) run by
// the interpreter (interpreter.cpp), its serving path on a Workspace, and
// its reports (summary, weight bytes).
#include "sparq/nn/quantized.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <new>
#include <utility>

#include "kernels/observe_kernels.hpp"
#include "nn/nn_internal.hpp"
#include "quant/dynamic_qparams.hpp"
#include "sparq/error.hpp"
#include "sparq/isa.hpp"
#include "sparq/threads.hpp"
#include "sparq/nn/sequential.hpp"
#include "sparq/quant/quantize.hpp"
#include "sparq/quant/requantize.hpp"

namespace sparq::nn {

using sparq::detail::fail;

namespace detail {

/// f() with its errors prefixed by the unit's name and description.
template <class F>
auto checked(const QuantizedUnit& u, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    fail("QuantizedModel unit '{}' ({}): {}", u.name, u.describe(), e.what());
  }
}

Act run_checked(const std::vector<QuantizedUnit>& units, std::size_t i, Act in) {
  return checked(units[i], [&] { return run_unit_act(units[i], std::move(in)); });
}

}  // namespace detail

using namespace detail;  // the interpreter above, for QuantizedModel

// ------------------------------------------------------------ QuantizedUnit/Model
std::string QuantizedUnit::describe() const {
  return std::visit(
      [](const auto& op) -> std::string {
        using T = std::decay_t<decltype(op)>;
        if constexpr (std::is_same_v<T, QLinear>) {
          return fmt::format(
              "QLinear {} {} ({} -> {}) {} {}", mode_name(op.mode), activation_name(op.activation),
              op.in_features, op.out_features, op.weights ? op.weights->kind() : "?",
              op.weights && op.weights->per_channel() ? "per-channel" : "per-tensor");
        } else if constexpr (std::is_same_v<T, QConv2d>) {
          return fmt::format(
              "QConv2d {} {} ({} -> {}, k{}x{}, s{}x{}, p{}x{}, d{}x{}, g{}) {} {}",
              mode_name(op.mode), activation_name(op.activation), op.in_channels, op.out_channels,
              op.kernel_h, op.kernel_w, op.stride_h, op.stride_w, op.pad_h, op.pad_w, op.dilation_h,
              op.dilation_w, op.groups, op.weights.empty() ? "?" : op.weights[0]->kind(),
              !op.weights.empty() && op.weights[0]->per_channel() ? "per-channel" : "per-tensor");
        } else if constexpr (std::is_same_v<T, MaxPool2d>) {
          return nn::describe(Layer(op));
        } else if constexpr (std::is_same_v<T, Flatten>) {
          return "Flatten";
        } else {
          std::string s = "FP32 [";
          for (std::size_t i = 0; i < op.layers.size(); ++i)
            s += (i ? ", " : "") + nn::describe(op.layers[i]);
          return s + "]";
        }
      },
      op);
}

bool QuantizedUnit::observed() const noexcept {
  return !std::holds_alternative<MaxPool2d>(op) && !std::holds_alternative<Flatten>(op);
}

QuantizedModel::QuantizedModel(std::vector<QuantizedUnit> units) : units_(std::move(units)) {
  for (QuantizedUnit& u : units_) {
    if (auto* l = std::get_if<QLinear>(&u.op)) l->prepare();
    if (auto* c = std::get_if<QConv2d>(&u.op)) c->prepare();
  }
}

struct Workspace::Impl {
  Act acts[2];        ///< a unit's input and output, alternating
  Buffer<float> out;  ///< the dequantized output of a model that ends in u8
};

Workspace::Workspace() : impl_(std::make_unique<Impl>()) {}
Workspace::~Workspace() = default;
Workspace::Workspace(Workspace&&) noexcept = default;
Workspace& Workspace::operator=(Workspace&&) noexcept = default;

std::size_t Workspace::bytes() const noexcept {
  if (!impl_) return 0;
  std::size_t n = impl_->out.capacity() * sizeof(float);
  for (const Act& a : impl_->acts) n += a.f.capacity() * sizeof(float) + a.q.capacity();
  return n;
}

TensorView QuantizedModel::forward(TensorView x, Workspace& ws) const {
  const int64_t count = x.numel();
  if (count > 0 && x.data == nullptr) {
    fail("QuantizedModel::forward: x.data is null but x.shape {} holds {} values",
         shape_to_string(x.shape), count);
  }
  if (!ws.impl_) ws.impl_ = std::make_unique<Workspace::Impl>();  // a moved-from workspace
  Workspace::Impl& w = *ws.impl_;
  // The same slot holds the input of unit i in every call (i % 2), so each
  // buffer meets the same sizes each call and stops growing after the first.
  Act* in = &w.acts[0];
  Act* out = &w.acts[1];
  in->shape.assign(x.shape.begin(), x.shape.end());
  in->quantized = false;
  in->src = x.data;
  in->f.clear();
  in->q.clear();
  for (std::size_t i = 0; i < units_.size(); ++i) {
    // A conv followed by a max pool runs as one pass (see run_conv); only
    // here, where the conv's own output is not returned.
    const auto* conv = std::get_if<QConv2d>(&units_[i].op);
    const auto* pool = i + 1 < units_.size() ? std::get_if<MaxPool2d>(&units_[i + 1].op) : nullptr;
    if (conv && pool && fusable(*conv, *pool, in->shape)) {
      checked(units_[i], [&] { run_conv_into(*conv, *in, *out, pool); });
      ++i;
    } else {
      checked(units_[i], [&] { run_unit_into(units_[i], *in, *out); });
    }
    std::swap(in, out);
  }
  if (!in->quantized) return TensorView(in->floats(), in->shape);
  w.out.resize(in->q.size());
  sparq::detail::dequantize_tensor(DType::u8, in->q.data(), w.out.data(), in->q.size(),
                                   in->qp.scale, in->qp.zero_point);
  return TensorView(w.out.data(), in->shape);
}

Tensor QuantizedModel::forward(const Tensor& x) const {
  if (checked_numel(x.shape, "QuantizedModel input") != x.numel()) {
    fail("QuantizedModel: input has {} values but shape {}", x.data.size(),
         shape_to_string(x.shape));
  }
  Workspace ws;
  const TensorView y = forward(TensorView(x), ws);
  return Tensor(std::vector<int64_t>(y.shape.begin(), y.shape.end()),
                std::vector<float>(y.data, y.data + y.numel()));
}

std::vector<Tensor> QuantizedModel::forward_trace(const Tensor& x) const {
  std::vector<Tensor> out;
  Act a = act_from_tensor(x);
  for (std::size_t i = 0; i < units_.size(); ++i) {
    a = run_checked(units_, i, std::move(a));
    Act copy = a;
    out.push_back(act_to_tensor(std::move(copy)));
  }
  return out;
}

Tensor QuantizedModel::run_unit(std::size_t i, const Tensor& x) const {
  if (i >= units_.size()) fail("QuantizedModel::run_unit: index {} >= {} units", i, units_.size());
  return act_to_tensor(run_checked(units_, i, act_from_tensor(x)));
}

std::size_t detail::unit_weight_bytes(const QuantizedUnit& u) {
  std::size_t bytes = 0;
  if (const auto* l = std::get_if<QLinear>(&u.op)) {
    bytes += l->weights->bytes() + l->bias.size() * sizeof(float);
  } else if (const auto* c = std::get_if<QConv2d>(&u.op)) {
    for (const auto& w : c->weights) bytes += w->bytes();
    bytes += c->bias.size() * sizeof(float);
  } else if (const auto* f = std::get_if<Fp32Block>(&u.op)) {
    Sequential s;
    for (const Layer& l : f->layers) s.add(l);
    bytes += s.weight_bytes();
  }
  return bytes;
}

std::size_t QuantizedModel::weight_bytes() const {
  std::size_t bytes = 0;
  for (const QuantizedUnit& u : units_) bytes += unit_weight_bytes(u);
  return bytes;
}

std::string QuantizedModel::summary() const {
  std::string s;
  for (const QuantizedUnit& u : units_) s += fmt::format("{:<4} {}\n", u.name, u.describe());
  return s;
}

}  // namespace sparq::nn
