// Quantized layers: the dense INT8 weight storage (QuantizedWeights),
// quantize_weights, and QLinear / QConv2d preparation (validation and the
// requantize stages derived from their qparams). Running them is
// interpreter.cpp's job; the model around them is quantized.cpp's.
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

// ------------------------------------------------------------ dense weights
namespace {

class DenseWeights final : public QuantizedWeights {
 public:
  DenseWeights(std::vector<int8_t> values, int64_t n, int64_t k, std::vector<float> scales)
      : values_(std::move(values)), n_(n), k_(k) {
    if (n < 1 || k < 1) fail("make_dense_weights: n ({}) and k ({}) must be >= 1", n, k);
    if (static_cast<int64_t>(values_.size()) / n != k ||
        static_cast<int64_t>(values_.size()) % n != 0) {
      fail("make_dense_weights: {} values given for an {} x {} matrix", values_.size(), n, k);
    }
    if (scales.size() != 1 && static_cast<int64_t>(scales.size()) != n) {
      fail("make_dense_weights: {} scales given; expected 1 or n = {}", scales.size(), n);
    }
    for (float s : scales) {
      if (!std::isfinite(s) || !(s > 0.0f))
        fail("make_dense_weights: scale {} must be finite and > 0", s);
    }
    per_channel_ = scales.size() != 1 || n == 1;
    packed_ = pack_weights(values_.data(), n, k, WeightLayout::out_in, 0, scales);
    scales_.assign(static_cast<std::size_t>(n), scales[0]);
    if (scales.size() != 1) scales_ = std::move(scales);
  }
  std::string kind() const override { return "dense"; }
  int64_t n() const noexcept override { return n_; }
  int64_t k() const noexcept override { return k_; }
  std::span<const float> scales() const noexcept override { return scales_; }
  bool per_channel() const noexcept override { return per_channel_; }
  std::span<const int8_t> values() const noexcept override { return values_; }
  std::size_t bytes() const noexcept override { return packed_.packed_bytes(); }
  void gemm(const ActivationsU8& a, const RequantizeStage& stage, uint8_t* c,
            int64_t ldc) const override {
    sparq::gemm(a, packed_, stage, c, ldc);
  }
  void gemm(const ActivationsU8& a, const DequantizeStage& stage, float* c,
            int64_t ldc) const override {
    sparq::gemm(a, packed_, stage, c, ldc);
  }
  void linear_dynamic(const float* x, int64_t m, int64_t ldx, std::span<const float> bias, float* y,
                      int64_t ldy, const DynamicOptions& options) const override {
    sparq::linear_dynamic(x, m, ldx, packed_, bias, y, ldy, options);
  }
  void gemm(const ActivationsU8& a, int32_t* c, int64_t ldc) const override {
    sparq::gemm(a, packed_, Int32Output{}, c, ldc);
  }

 private:
  std::vector<int8_t> values_;
  int64_t n_, k_;
  std::vector<float> scales_;
  bool per_channel_ = true;
  PackedWeights packed_;
};

}  // namespace

std::shared_ptr<const QuantizedWeights> make_dense_weights(std::vector<int8_t> values, int64_t n,
                                                           int64_t k, std::vector<float> scales) {
  return std::make_shared<const DenseWeights>(std::move(values), n, k, std::move(scales));
}

std::vector<std::shared_ptr<const QuantizedWeights>> detail::split_groups(
    const std::vector<int8_t>& values, const std::vector<float>& scales, const Conv2dGeometry& c) {
  const int64_t patch = c.patch_size(), og = c.out_channels / c.groups;
  std::vector<std::shared_ptr<const QuantizedWeights>> out;
  for (int64_t g = 0; g < c.groups; ++g) {
    std::vector<int8_t> v(values.begin() + g * og * patch, values.begin() + (g + 1) * og * patch);
    std::vector<float> s = scales.size() == 1 ? scales
                                              : std::vector<float>(scales.begin() + g * og,
                                                                   scales.begin() + (g + 1) * og);
    out.push_back(make_dense_weights(std::move(v), og, patch, std::move(s)));
  }
  return out;
}

std::vector<float> quantize_weights_into(std::span<const float> w, int64_t n, int64_t k,
                                         Granularity granularity, std::span<int8_t> values) {
  if (n < 1 || k < 1 || static_cast<int64_t>(w.size()) / n != k ||
      static_cast<int64_t>(w.size()) % n != 0) {
    fail("quantize_weights: {} values given for an {} x {} matrix", w.size(), n, k);
  }
  // The public observer kernels, compute_qparams and quantize: weights are
  // quantized by the same definition as everything else (docs/design.md,
  // "Rounding"). s8 symmetric is PyTorch's default weight spec.
  const bool per_channel = granularity == Granularity::per_channel;
  const int64_t groups = per_channel ? n : 1;
  const int64_t per = static_cast<int64_t>(w.size()) / groups;
  const auto& kern = sparq::detail::observe_kernels(active_isa());
  std::vector<float> mins(static_cast<std::size_t>(groups)), maxs(mins.size());
  for (int64_t g = 0; g < groups; ++g) {
    sparq::detail::MinMaxAccum acc{std::numeric_limits<float>::infinity(),
                                   -std::numeric_limits<float>::infinity(), 0, 0};
    kern.minmax(w.data() + g * per, static_cast<std::size_t>(per), &acc);
    if (acc.nan_count != 0 || acc.inf_count != 0) {
      for (int64_t i = 0; i < per; ++i) {
        const float v = w[static_cast<std::size_t>(g * per + i)];
        if (!std::isfinite(v))
          fail("quantize_weights: weight {} of channel {} is {}; expected finite", i, g, v);
      }
    }
    mins[static_cast<std::size_t>(g)] = acc.min;
    maxs[static_cast<std::size_t>(g)] = acc.max;
  }
  QuantSpec spec;
  spec.granularity = per_channel ? Granularity::per_channel : Granularity::per_tensor;
  spec.axis = 0;
  const ChannelQParams qp = compute_qparams(mins, maxs, spec);
  if (values.size() != w.size()) {
    fail("quantize_weights: {} output values for {} weights; expected equal sizes", values.size(),
         w.size());
  }
  const int64_t shape[] = {n, k};
  if (per_channel) {
    sparq::quantize<int8_t>(w, shape, spec, qp, values);
  } else {
    sparq::quantize<int8_t>(w, shape, spec, qp[0], values);
  }
  return qp.scales;
}

QuantizedTensor quantize_weights(std::span<const float> w, int64_t n, int64_t k,
                                 Granularity granularity) {
  QuantizedTensor out;
  out.values.resize(w.size());
  out.scales = quantize_weights_into(w, n, k, granularity, out.values);
  return out;
}

const char* mode_name(QuantMode m) noexcept {
  return m == QuantMode::static_ ? "static" : "dynamic";
}

// ------------------------------------------------------------ preparation
namespace {

void check_qparams(const QParams& qp, const char* what) {
  if (!std::isfinite(qp.scale) || !(qp.scale > 0.0f) || !std::isfinite(1.0f / qp.scale) ||
      qp.zero_point < 0 || qp.zero_point > 255) {
    fail(
        "{}: scale {} must be finite and > 0 (with a finite reciprocal) and zero point {} in [0, "
        "255] (u8)",
        what, qp.scale, qp.zero_point);
  }
}

/// Requantization stage for output channels [c0, c0 + n) of a static layer.
RequantizeStage make_stage(const QuantizedWeights& w, std::span<const float> bias, int64_t c0,
                           const QParams& in, const QParams& out, Activation act) {
  RequantizeStage s;
  const auto scales = w.scales();
  for (int64_t j = 0; j < w.n(); ++j) {
    const double acc_scale = static_cast<double>(in.scale) * static_cast<double>(scales[j]);
    const double m = acc_scale / static_cast<double>(out.scale);
    if (!(m < 1073741824.0)) {
      fail(
          "quantized layer: requantization multiplier {} (input scale {} x weight scale {} / "
          "output "
          "scale {}) must be < 2^30",
          m, in.scale, scales[j], out.scale);
    }
    s.multipliers.push_back(quantize_multiplier(m));
    if (!bias.empty()) {
      // Clamped to +-2^30 so that acc + bias cannot overflow int32 for any in-range acc.
      const double q = std::nearbyint(static_cast<double>(bias[c0 + j]) / acc_scale);
      s.bias.push_back(static_cast<int32_t>(std::clamp(q, -1073741824.0, 1073741824.0)));
    }
  }
  s.output_zero_point = out.zero_point;
  s.clamp_min = act == Activation::none ? 0 : out.zero_point;
  s.clamp_max = 255;
  if (act == Activation::relu6) {
    const double six = std::nearbyint(6.0 / static_cast<double>(out.scale));
    s.clamp_max = static_cast<int32_t>(std::min(255.0, out.zero_point + six));
  }
  return s;
}

void check_bias(const std::vector<float>& bias, int64_t n, const char* who) {
  if (!bias.empty() && static_cast<int64_t>(bias.size()) != n) {
    fail("{}: bias has {} values; expected 0 or {}", who, bias.size(), n);
  }
  for (float b : bias) {
    if (!std::isfinite(b)) fail("{}: bias value {} must be finite", who, b);
  }
}

}  // namespace

void QLinear::prepare() {
  if (!weights) fail("QLinear: weights are missing");
  if (weights->n() != out_features || weights->k() != in_features) {
    fail("QLinear: weights are {} x {} but the layer is {} -> {}", weights->n(), weights->k(),
         in_features, out_features);
  }
  check_bias(bias, out_features, "QLinear");
  stage = {};
  if (mode == QuantMode::static_) {
    check_qparams(input_qparams, "QLinear input qparams");
    check_qparams(output_qparams, "QLinear output qparams");
    stage = make_stage(*weights, bias, 0, input_qparams, output_qparams, activation);
  }
}

void QConv2d::prepare() {
  validate();
  if (static_cast<int64_t>(weights.size()) != groups) {
    fail("QConv2d: {} weight blocks given; expected one per group ({})", weights.size(), groups);
  }
  const int64_t og = out_channels / groups;
  for (const auto& w : weights) {
    if (!w || w->n() != og || w->k() != patch_size()) {
      fail("QConv2d: a group's weights must be {} x {} (got {})", og, patch_size(),
           w ? fmt::format("{} x {}", w->n(), w->k()) : "none");
    }
  }
  check_bias(bias, out_channels, "QConv2d");
  stages.clear();
  if (mode == QuantMode::static_) {
    check_qparams(input_qparams, "QConv2d input qparams");
    check_qparams(output_qparams, "QConv2d output qparams");
    for (int64_t g = 0; g < groups; ++g) {
      stages.push_back(
          make_stage(*weights[g], bias, g * og, input_qparams, output_qparams, activation));
    }
  }
}

}  // namespace sparq::nn
