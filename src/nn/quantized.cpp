// Quantized layers (QLinear, QConv2d) and the QuantizedModel interpreter.
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
    sparq::gemm(a, packed_, c, ldc);
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

QuantizedTensor quantize_weights(std::span<const float> w, int64_t n, int64_t k,
                                 Granularity granularity) {
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
  QuantizedTensor out;
  out.values.resize(w.size());
  out.scales = qp.scales;
  const int64_t shape[] = {n, k};
  if (per_channel) {
    sparq::quantize<int8_t>(w, shape, spec, qp, out.values);
  } else {
    sparq::quantize<int8_t>(w, shape, spec, qp[0], out.values);
  }
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

// ------------------------------------------------------------ execution
namespace detail {

/// The dynamic qparams of an FP32 activation (its whole range).
QParams dynamic_qparams(const Act& x) {
  return sparq::detail::dynamic_u8_qparams(x.floats(), 1, static_cast<int64_t>(x.float_count()), 0,
                                           "dynamic quantization");
}

// Conversions reuse the activation's buffers (clear() keeps the capacity), so
// a serving loop on a Workspace stops allocating after its first call.
void act_to_float(Act& a) {
  if (!a.quantized) return;
  a.f.resize(a.q.size());
  sparq::detail::dequantize_tensor(DType::u8, a.q.data(), a.f.data(), a.q.size(), a.qp.scale,
                                   a.qp.zero_point);
  a.quantized = false;
  a.q.clear();
}

void act_to_u8(Act& a, const QParams& qp) {
  if (a.quantized && a.qp == qp) return;
  act_to_float(a);
  // The public quantizer's dispatched loop: clamp(nearbyint(x * (1 / scale)) + zp), NaN -> zp.
  const std::size_t n = a.float_count();
  a.q.resize(n);
  sparq::detail::quantize_tensor(DType::u8, a.floats(), a.q.data(), n, 1.0f / qp.scale,
                                 qp.zero_point, 0, 255);
  a.qp = qp;
  a.quantized = true;
  a.f.clear();
  a.src = nullptr;
}

namespace {
std::atomic<int> g_block_team{1};
}  // namespace

int last_block_team() noexcept { return g_block_team.load(std::memory_order_relaxed); }
void record_block_team(int threads) noexcept {
  g_block_team.store(threads, std::memory_order_relaxed);
}

int parallel_threads(int64_t units) {
#if defined(SPARQ_WITH_OPENMP)
  return static_cast<int>(std::clamp<int64_t>(units, 1, sparq::num_threads()));
#else
  (void)units;
  return 1;
#endif
}

void run_linear(const QLinear& l, Act& in, Act& out) {
  if (in.shape.empty() || in.shape.back() != l.in_features) {
    fail("QLinear: input shape {} must end with in_features = {}", shape_to_string(in.shape),
         l.in_features);
  }
  const int64_t m = checked_numel(in.shape) / l.in_features;
  out.src = nullptr;
  out.shape = in.shape;
  out.shape.back() = l.out_features;
  const auto count = static_cast<std::size_t>(m * l.out_features);
  if (l.mode == QuantMode::dynamic) {
    act_to_float(in);
    out.quantized = false;
    out.q.clear();
    out.f.resize(count);
    if (m > 0) {
      DynamicOptions o;
      o.relu = l.activation != Activation::none;
      o.per_row = l.per_row;
      l.weights->linear_dynamic(in.floats(), m, l.in_features, l.bias, out.f.data(), l.out_features,
                                o);
      if (l.activation == Activation::relu6)
        detail::apply_activation(out.f.data(), m * l.out_features, Activation::relu6);
    }
  } else {
    act_to_u8(in, l.input_qparams);
    out.quantized = true;
    out.qp = l.output_qparams;
    out.f.clear();
    out.q.resize(count);
    if (m > 0) {
      l.weights->gemm(ActivationsU8{in.q.data(), m, l.in_features, l.in_features, in.qp.zero_point},
                      l.stage, out.q.data(), l.out_features);
    }
  }
}

/// Depthwise convolution, direct: integer accumulators, then the requantize
/// stage's exact scalar arithmetic (static) or the dequantize formula (dynamic).
void depthwise(const QConv2d& c, const Act& in, int64_t oh, int64_t ow, Act& out) {
  const int64_t b = in.shape[0], h = in.shape[1], w = in.shape[2], ch = c.in_channels;
  const int64_t mult = c.out_channels / ch, taps = c.kernel_h * c.kernel_w;
  const int32_t zp = in.qp.zero_point;
  for (int64_t n = 0; n < b; ++n)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        const int64_t row = (n * oh + oy) * ow + ox;
        for (int64_t o = 0; o < c.out_channels; ++o) {
          const int64_t ic = o / mult;
          const int8_t* wv = c.weights[ic]->values().data() + (o % mult) * taps;
          int32_t acc = 0;
          for (int64_t ky = 0; ky < c.kernel_h; ++ky) {
            const int64_t iy = oy * c.stride_h - c.pad_h + ky * c.dilation_h;
            if (iy < 0 || iy >= h) continue;
            for (int64_t kx = 0; kx < c.kernel_w; ++kx) {
              const int64_t ix = ox * c.stride_w - c.pad_w + kx * c.dilation_w;
              if (ix < 0 || ix >= w) continue;
              const int32_t a = in.q[((n * h + iy) * w + ix) * ch + ic];
              acc += (a - zp) * wv[ky * c.kernel_w + kx];
            }
          }
          if (c.mode == QuantMode::static_) {
            const RequantizeStage& s = c.stages[ic];
            const int64_t j = o % mult;
            const int64_t sum = static_cast<int64_t>(acc) + (s.bias.empty() ? 0 : s.bias[j]);
            const auto acc32 = static_cast<int32_t>(std::clamp<int64_t>(
                sum, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
            out.q[row * c.out_channels + o] = static_cast<uint8_t>(
                requantize(acc32, s.multipliers[j], s.output_zero_point, s.clamp_min, s.clamp_max));
          } else {
            float y = static_cast<float>(acc) * (in.qp.scale * c.weights[ic]->scales()[o % mult]);
            if (!c.bias.empty()) y += c.bias[o];
            out.f[row * c.out_channels + o] = y;
          }
        }
      }
}

/// Depthwise convolution with one output per channel (MobileNet's kind),
/// channels innermost: the weights are transposed to [tap][channel] so each
/// tap adds one contiguous run of channels (vectorised by the compiler),
/// and a row of output pixels goes through the GEMM's output stage kernels
/// (sparq::apply_stage): the same int32 sums and the same stage arithmetic
/// as depthwise() above, hence the same bits for a static layer. Rows of
/// the output run on sparq::num_threads() threads.
void depthwise_one_per_channel(const QConv2d& c, const Act& in, int64_t oh, int64_t ow, Act& out) {
  const int64_t b = in.shape[0], h = in.shape[1], w = in.shape[2], ch = c.in_channels;
  const int64_t taps = c.kernel_h * c.kernel_w;
  const int32_t zp = in.qp.zero_point;
  // Per-call scratch kept across calls (grow-only), so a serving loop does
  // not allocate here. Bound to references: the row lambda runs on other
  // threads too and must read this thread's copies.
  thread_local std::vector<int16_t> wt_scratch;
  thread_local RequantizeStage st_scratch;
  thread_local DequantizeStage dq_scratch;
  thread_local std::vector<float> scales_scratch;
  std::vector<int16_t>& wt = wt_scratch;
  RequantizeStage& st = st_scratch;
  DequantizeStage& dq = dq_scratch;
  std::vector<float>& scales = scales_scratch;
  wt.resize(static_cast<std::size_t>(taps * ch));
  for (int64_t ic = 0; ic < ch; ++ic) {
    const int8_t* v = c.weights[ic]->values().data();
    for (int64_t t = 0; t < taps; ++t) wt[t * ch + ic] = v[t];
  }
  const bool is_static = c.mode == QuantMode::static_;
  st.multipliers.clear();
  st.bias.clear();
  scales.clear();
  if (is_static) {
    const bool bias = !c.stages[0].bias.empty();
    for (int64_t ic = 0; ic < ch; ++ic) {
      st.multipliers.push_back(c.stages[ic].multipliers[0]);
      if (bias) st.bias.push_back(c.stages[ic].bias[0]);
    }
    st.output_zero_point = c.stages[0].output_zero_point;
    st.clamp_min = c.stages[0].clamp_min;
    st.clamp_max = c.stages[0].clamp_max;
  } else {
    for (int64_t ic = 0; ic < ch; ++ic) scales.push_back(c.weights[ic]->scales()[0]);
    dq.activation_scale = in.qp.scale;
    dq.bias = c.bias;
  }
  const int64_t rows = b * oh;
  auto row = [&](int64_t r, std::vector<int32_t>& sums) {
    const int64_t n = r / oh, oy = r % oh;
    sums.assign(static_cast<std::size_t>(ow * ch), 0);
    for (int64_t ox = 0; ox < ow; ++ox) {
      int32_t* acc = sums.data() + ox * ch;
      for (int64_t ky = 0; ky < c.kernel_h; ++ky) {
        const int64_t iy = oy * c.stride_h - c.pad_h + ky * c.dilation_h;
        if (iy < 0 || iy >= h) continue;  // zero-point padding adds (zp - zp) * w = 0
        for (int64_t kx = 0; kx < c.kernel_w; ++kx) {
          const int64_t ix = ox * c.stride_w - c.pad_w + kx * c.dilation_w;
          if (ix < 0 || ix >= w) continue;
          const uint8_t* x = in.q.data() + ((n * h + iy) * w + ix) * ch;
          const int16_t* wv = wt.data() + (ky * c.kernel_w + kx) * ch;
          // |x - zp| <= 255 and |w| <= 128: the product fits int16 exactly,
          // so it is formed in 16 bits (pmullw) and widened for the sum.
          for (int64_t i = 0; i < ch; ++i) {
            acc[i] += static_cast<int16_t>(static_cast<int16_t>(x[i] - zp) * wv[i]);
          }
        }
      }
    }
    const int64_t o = r * ow * ch;
    if (is_static) {
      apply_stage(sums.data(), ow, ch, ch, st, out.q.data() + o, ch);
    } else {
      apply_stage(sums.data(), ow, ch, ch, scales, dq, out.f.data() + o, ch);
    }
  };
  thread_local std::vector<int32_t> sums;  // one per thread
  detail::for_each_block(rows, detail::parallel_threads(rows), [&](int64_t r) { row(r, sums); });
}

/// True when `pool` can run fused after conv `c` on input shape `shape`:
/// both units would succeed on their own (the unfused path reports the
/// errors, under the right unit's name) and the conv goes through im2col.
bool fusable(const QConv2d& c, const MaxPool2d& pool, const std::vector<int64_t>& shape) {
  if (c.depthwise() || shape.size() != 4 || shape[3] != c.in_channels) return false;
  try {
    const int64_t oh = c.out_h(shape[1]), ow = c.out_w(shape[2]);
    pool.validate();
    return pool.out_h(oh) > 0 && pool.out_w(ow) > 0 && shape[0] > 0;
  } catch (const Error&) {
    return false;
  }
}

/// A convolution unit, optionally followed by a max pooling unit (`pool`,
/// which fusable() accepted). The patch matrix is built and multiplied a
/// block of rows at a time (see im2col_block_rows) in a buffer kept across
/// calls: no per-call allocation, and the block is still in cache when the
/// GEMM packs it. With a pool, blocks are whole images and each block's
/// conv output (in a second reused buffer) is pooled while it is in cache,
/// so the full-resolution activation never goes to memory. Every output row
/// depends only on its own patch row, and the pool sees exactly the values
/// the conv unit would have produced, so neither changes a single bit.
void run_conv_into(const QConv2d& c, Act& in, Act& out, const MaxPool2d* pool,
                   const ConvResidual* residual) {
  detail::check_nhwc(in.shape, c.in_channels, "QConv2d");
  const int64_t b = in.shape[0], h = in.shape[1], w = in.shape[2];
  const int64_t oh = c.out_h(h), ow = c.out_w(w);
  const int64_t m = b * oh * ow, cg = c.in_channels / c.groups, og = c.out_channels / c.groups;
  const int64_t patch = c.patch_size(), oc = c.out_channels;
  const bool is_static = c.mode == QuantMode::static_;
  if (residual && (pool || !is_static || c.depthwise())) {
    fail(
        "QConv2d: a residual input needs a static, non-depthwise convolution without a fused pool");
  }
  if (!is_static) {
    act_to_float(in);
    const QParams qp = dynamic_qparams(in);
    act_to_u8(in, qp);
  } else {
    act_to_u8(in, c.input_qparams);
  }
  const int64_t ph = pool ? pool->out_h(oh) : oh, pw = pool ? pool->out_w(ow) : ow;
  out.src = nullptr;
  out.shape = {b, ph, pw, oc};
  const auto count = static_cast<std::size_t>(checked_numel(out.shape));
  out.quantized = is_static;
  if (is_static) {
    out.qp = c.output_qparams;
    out.f.clear();
    out.q.resize(count);
  } else {
    out.q.clear();
    out.f.resize(count);
  }
  if (m == 0) return;
  if (c.depthwise()) {
    if (c.out_channels == c.in_channels) {
      depthwise_one_per_channel(c, in, oh, ow, out);
    } else {
      depthwise(c, in, oh, ow, out);
    }
    if (!is_static)
      detail::apply_activation(out.f.data(), static_cast<int64_t>(count), c.activation);
    return;
  }
  const int64_t image = oh * ow;
  // Conv + pool with dense weights: pool the exact int32 sums, then
  // requantize (static) or dequantize and activate (dynamic) only the pooled
  // values (a quarter of them for a 2x2 pool). Requantization (saturating
  // bias add, fixed-point multiply by a multiplier >= 0, rounding shift,
  // clamp), dequantization (fma(float(sum), scale > 0, bias)) and ReLU/ReLU6
  // are all non-decreasing in the sum, so max commutes with them: the same
  // bits as the output stage first. Every window has a real tap
  // (MaxPool2d::validate), so the int32 identity never reaches the output.
  // Limited to K whose sums always fit in int32 (|a - zp| * |w| <= 255 *
  // 128), where the GEMM's output stages see the same sums.
  const bool pool_sums = pool && patch <= (int64_t{1} << 31) / (255 * 128) - 1;
  int64_t block = detail::im2col_block_rows(patch + oc * (is_static && !pool_sums ? 1 : 4), m);
  // Without a fused pool, blocks are independent: with several threads each
  // takes whole blocks (its own patch rows, a one-thread GEMM: the GEMM's
  // own parallel region nests to one thread), so im2col runs in parallel
  // too and no GEMM call is too small for the team. Blocks shrink so every
  // thread gets one even at batch 1.
  const int threads = pool ? 1 : detail::parallel_threads(m);
  if (threads > 1) block = std::min(block, (m + threads - 1) / threads);
  if (pool) block = std::max<int64_t>(1, block / image) * image;
  thread_local std::vector<uint8_t> cols;
  thread_local Buffer<uint8_t> conv_q;  // the conv output of one block, when pooled
  thread_local Buffer<float> conv_f;
  thread_local Buffer<int32_t> conv_s, pooled_s;  // sums of one block and their pool
  auto reserve = [](auto& buf, int64_t n) {
    if (buf.size() < static_cast<std::size_t>(n)) buf.resize(static_cast<std::size_t>(n));
  };
  // A 1x1 convolution with stride 1 and no padding multiplies the NHWC input
  // itself: its patch matrix would be a copy of it.
  const bool pointwise = c.kernel_h == 1 && c.kernel_w == 1 && c.stride_h == 1 && c.stride_w == 1 &&
                         c.pad_h == 0 && c.pad_w == 0 && c.groups == 1;
  if (pool_sums) {
    reserve(conv_s, block * oc);
    reserve(pooled_s, block / image * ph * pw * oc);
  } else if (pool) {
    is_static ? reserve(conv_q, block * oc) : reserve(conv_f, block * oc);
  }
  thread_local std::vector<DequantizeStage> dq_scratch;  // kept across calls: no allocation
  std::vector<DequantizeStage>& dq = dq_scratch;         // this thread's, in the lambda too
  dq.resize(is_static ? 0 : static_cast<std::size_t>(c.groups));
  for (int64_t g = 0; g < static_cast<int64_t>(dq.size()); ++g) {
    dq[g].activation_scale = in.qp.scale;
    dq[g].bias.clear();
    if (!c.bias.empty()) dq[g].bias.assign(c.bias.begin() + g * og, c.bias.begin() + (g + 1) * og);
  }
  auto run_block = [&](int64_t index) {
    const int64_t r0 = index * block;
    const int64_t r1 = std::min(m, r0 + block);
    if (!pointwise) reserve(cols, block * patch);  // per thread (thread_local)
    uint8_t* yq = is_static ? (pool ? conv_q.data() : out.q.data() + r0 * oc) : nullptr;
    float* yf = is_static ? nullptr : (pool ? conv_f.data() : out.f.data() + r0 * oc);
    for (int64_t g = 0; g < c.groups; ++g) {
      const uint8_t* rows = in.q.data() + r0 * patch;
      if (!pointwise) {
        detail::im2col(in.q.data(), h, w, c.in_channels, c, g * cg, cg, oh, ow,
                       static_cast<uint8_t>(in.qp.zero_point), r0, r1, cols.data());
        rows = cols.data();
      }
      const ActivationsU8 a{rows, r1 - r0, patch, patch, in.qp.zero_point};
      if (pool_sums) {
        c.weights[g]->gemm(a, conv_s.data() + g * og, oc);
      } else if (is_static && residual) {
        RequantizeStage with_residual = c.stages[g];
        with_residual.residual = ResidualInput{residual->data + r0 * oc + g * og, false, oc,
                                               residual->zero_point, (*residual->multipliers)[g]};
        c.weights[g]->gemm(a, with_residual, yq + g * og, oc);
      } else if (is_static) {
        c.weights[g]->gemm(a, c.stages[g], yq + g * og, oc);
      } else {
        c.weights[g]->gemm(a, dq[g], yf + g * og, oc);
      }
    }
    if (!is_static && !pool_sums) detail::apply_activation(yf, (r1 - r0) * oc, c.activation);
    if (!pool) return;
    const int64_t n0 = r0 / image, n = (r1 - r0) / image;
    uint8_t* pooled_q = is_static ? out.q.data() + n0 * ph * pw * oc : nullptr;
    if (pool_sums) {
      detail::max_pool(conv_s.data(), n, oh, ow, oc, *pool, ph, pw, pooled_s.data());
      const int64_t rows = n * ph * pw;
      for (int64_t g = 0; g < c.groups; ++g) {
        const int32_t* sums = pooled_s.data() + g * og;
        if (is_static) {
          apply_stage(sums, rows, og, oc, c.stages[g], pooled_q + g * og, oc);
        } else {
          apply_stage(sums, rows, og, oc, c.weights[g]->scales(), dq[g],
                      out.f.data() + n0 * ph * pw * oc + g * og, oc);
        }
      }
      if (!is_static) {
        detail::apply_activation(out.f.data() + n0 * ph * pw * oc, rows * oc, c.activation);
      }
    } else if (is_static) {
      detail::max_pool(yq, n, oh, ow, oc, *pool, ph, pw, pooled_q);
    } else {
      detail::max_pool(yf, n, oh, ow, oc, *pool, ph, pw, out.f.data() + n0 * ph * pw * oc);
    }
  };
  detail::for_each_block((m + block - 1) / block, threads, run_block);
}

Act run_conv(const QConv2d& c, Act in, const MaxPool2d* pool, const ConvResidual* residual) {
  Act out;
  run_conv_into(c, in, out, pool, residual);
  return out;
}

void run_pool(const MaxPool2d& p, Act& in, Act& out) {
  detail::check_nhwc(in.shape, 0, "MaxPool2d");
  p.validate();
  const int64_t b = in.shape[0], h = in.shape[1], w = in.shape[2], c = in.shape[3];
  const int64_t oh = p.out_h(h), ow = p.out_w(w);
  out.src = nullptr;
  out.shape = {b, oh, ow, c};
  out.quantized = in.quantized;
  out.qp = in.qp;
  const auto count = static_cast<std::size_t>(checked_numel(out.shape));
  // Max commutes with the monotonic dequantization, so u8 pooling is exact.
  if (in.quantized) {
    out.f.clear();
    out.q.resize(count);
    detail::max_pool(in.q.data(), b, h, w, c, p, oh, ow, out.q.data());
  } else {
    out.q.clear();
    out.f.resize(count);
    detail::max_pool(in.floats(), b, h, w, c, p, oh, ow, out.f.data());
  }
}

void run_unit_into(const QuantizedUnit& u, Act& in, Act& out) {
  std::visit(
      [&](const auto& op) {
        using T = std::decay_t<decltype(op)>;
        if constexpr (std::is_same_v<T, QLinear>) {
          run_linear(op, in, out);
        } else if constexpr (std::is_same_v<T, QConv2d>) {
          run_conv_into(op, in, out);
        } else if constexpr (std::is_same_v<T, MaxPool2d>) {
          run_pool(op, in, out);
        } else if constexpr (std::is_same_v<T, Flatten>) {
          // Only the shape changes: the values (and buffers) move over.
          if (in.shape.empty()) fail("Flatten: input must have a batch axis (got rank 0)");
          const int64_t b = in.shape[0], n = checked_numel(in.shape);
          out.shape.assign({b, b == 0 ? 0 : n / b});
          out.quantized = in.quantized;
          out.qp = in.qp;
          out.src = in.src;
          std::swap(out.f, in.f);
          std::swap(out.q, in.q);
        } else {
          act_to_float(in);
          const float* x = in.floats();
          Tensor t(in.shape, std::vector<float>(x, x + in.float_count()));
          for (const Layer& l : op.layers) t = forward(l, t);
          out.src = nullptr;
          out.quantized = false;
          out.q.clear();
          out.shape = t.shape;
          out.f.assign(t.data.begin(), t.data.end());
        }
      },
      u.op);
}

Act run_unit_act(const QuantizedUnit& u, Act in) {
  Act out;
  run_unit_into(u, in, out);
  return out;
}

Act act_from_tensor(const Tensor& x) {
  Act a;
  a.shape = x.shape;
  a.f.assign(x.data.begin(), x.data.end());
  if (checked_numel(a.shape, "QuantizedModel input") != static_cast<int64_t>(a.f.size())) {
    fail("QuantizedModel: input has {} values but shape {}", a.f.size(), shape_to_string(a.shape));
  }
  return a;
}

Tensor act_to_tensor(Act a) {
  act_to_float(a);
  const float* x = a.floats();
  return Tensor(std::move(a.shape), std::vector<float>(x, x + a.float_count()));
}

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
