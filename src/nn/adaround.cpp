// AdaRound (adaround.hpp): learned floor/ceil rounding of INT8 weights.
#include "sparq/nn/adaround.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <numbers>
#include <random>
#include <tuple>

#include "gemm/sgemm_packed.hpp"
#include "nn/nn_internal.hpp"
#include "sparq/error.hpp"
#include "sparq/gemm/sgemm.hpp"
#include "sparq/quant/quantize.hpp"

namespace sparq::nn {

using sparq::detail::fail;

void validate(const AdaRoundOptions& o) {
  if (o.iterations < 1) fail("adaround: options.iterations ({}) must be >= 1", o.iterations);
  if (o.batch_rows < 1) fail("adaround: options.batch_rows ({}) must be >= 1", o.batch_rows);
  if (o.calibration_rows < 1) {
    fail("adaround: options.calibration_rows ({}) must be >= 1", o.calibration_rows);
  }
  if (!std::isfinite(o.lambda) || o.lambda < 0) {
    fail("adaround: options.lambda ({}) must be finite and >= 0", o.lambda);
  }
  // beta >= 1 keeps |2h - 1|^(beta - 1), the regulariser's slope, finite at h = 1/2.
  if (!std::isfinite(o.beta_end) || o.beta_end < 1) {
    fail("adaround: options.beta_end ({}) must be finite and >= 1", o.beta_end);
  }
  if (!std::isfinite(o.beta_start) || o.beta_start < o.beta_end) {
    fail("adaround: options.beta_start ({}) must be finite and >= beta_end ({})", o.beta_start,
         o.beta_end);
  }
  if (!(o.warm_start >= 0 && o.warm_start < 1)) {
    fail("adaround: options.warm_start ({}) must be in [0, 1)", o.warm_start);
  }
  if (!std::isfinite(o.learning_rate) || o.learning_rate <= 0) {
    fail("adaround: options.learning_rate ({}) must be finite and > 0", o.learning_rate);
  }
}

namespace {

constexpr double kZeta = 1.1, kGamma = -0.1;  // the paper's stretch of the sigmoid
constexpr float kQmin = -128, kQmax = 127;    // s8 weights (quantized.hpp)

/// One N x K block of a layer's weights to round (a Linear, or one group of
/// a Conv2d) and the rows of its product to fit them on.
struct RoundingProblem {
  int64_t n = 0, k = 0, rows = 0;
  const float* weights = nullptr;  ///< FP32 (BatchNorm-folded), [n][k]
  std::span<const float> scales;   ///< n: the quantizer's, per output
  std::span<const float> bias;     ///< the quantized unit's (n or empty)
  Activation act = Activation::none;
  std::function<void(int64_t row, float* x)> input;  ///< k values of x~ for a row
  std::function<const float*(int64_t row)> target;   ///< n values of f(W x + b)
};

struct Rounded {
  std::vector<int8_t> values;
  int64_t changed = 0;
  double nearest_error = 0, adaround_error = 0;  ///< summed over rows
};

/// f(y) and the mask of its slope (1 where the gradient passes, else 0).
inline float activate(float y, Activation a, float& slope) {
  if (a == Activation::relu) {
    slope = y > 0 ? 1.0f : 0.0f;
    return std::max(y, 0.0f);
  }
  if (a == Activation::relu6) {
    slope = y > 0 && y < 6 ? 1.0f : 0.0f;
    return std::min(std::max(y, 0.0f), 6.0f);
  }
  slope = 1.0f;
  return y;
}

/// Gathers rows (inputs [rows][k], targets [rows][n]) of a problem.
void gather(const RoundingProblem& p, std::span<const int64_t> rows, float* x, float* t) {
  for (std::size_t i = 0; i < rows.size(); ++i) {
    p.input(rows[i], x + static_cast<int64_t>(i) * p.k);
    const float* src = p.target(rows[i]);
    std::copy(src, src + p.n, t + static_cast<int64_t>(i) * p.n);
  }
}

/// Sum over all rows of || f(x~ W~^T + b~) - target ||^2 for int8 `values`.
double output_error(const RoundingProblem& p, std::span<const int8_t> values) {
  std::vector<float> w(values.size());
  for (std::size_t i = 0; i < w.size(); ++i) {
    w[i] = static_cast<float>(values[i]) * p.scales[i / static_cast<std::size_t>(p.k)];
  }
  const PackedWeightsF32 packed = pack_weights_f32(w.data(), p.n, p.k, WeightLayout::out_in);
  constexpr int64_t kBlock = 1024;
  std::vector<int64_t> rows;
  std::vector<float> x(static_cast<std::size_t>(kBlock * p.k)),
      t(static_cast<std::size_t>(kBlock * p.n)), y(t.size());
  double sum = 0;
  for (int64_t r0 = 0; r0 < p.rows; r0 += kBlock) {
    const int64_t m = std::min(kBlock, p.rows - r0);
    rows.resize(static_cast<std::size_t>(m));
    for (int64_t i = 0; i < m; ++i) rows[static_cast<std::size_t>(i)] = r0 + i;
    gather(p, rows, x.data(), t.data());
    sgemm(x.data(), m, p.k, p.k, packed, p.bias, false, y.data(), p.n);
    for (int64_t i = 0; i < m * p.n; ++i) {
      float slope;
      const double d = static_cast<double>(activate(y[static_cast<std::size_t>(i)], p.act, slope)) -
                       t[static_cast<std::size_t>(i)];
      sum += d * d;
    }
  }
  return sum;
}

/// The rounding AdaRound learns for one problem (adaround.hpp).
Rounded learn_rounding(const RoundingProblem& p, const AdaRoundOptions& o, uint64_t seed) {
  const std::size_t count = static_cast<std::size_t>(p.n * p.k);
  // floor(w / s) as the quantizer computes w / s (w * (1 / s) in float).
  std::vector<float> floor_q(count), scale_of(count);
  std::vector<float> v(count), adam_m(count, 0.0f), adam_v(count, 0.0f);
  Rounded out;
  std::vector<int8_t> nearest(count);
  for (std::size_t i = 0; i < count; ++i) {
    const float s = p.scales[i / static_cast<std::size_t>(p.k)];
    const float t = p.weights[i] * (1.0f / s);
    const float f = std::floor(t);
    floor_q[i] = f;
    scale_of[i] = s;
    nearest[i] = static_cast<int8_t>(std::clamp(std::nearbyint(t), kQmin, kQmax));
    // h(V) = t - f: sigmoid(V) = (frac - gamma) / (zeta - gamma), in (1/12, 11/12).
    const double prob = (static_cast<double>(t - f) - kGamma) / (kZeta - kGamma);
    v[i] = static_cast<float>(std::log(prob / (1 - prob)));
  }
  out.nearest_error = output_error(p, nearest);
  if (out.nearest_error == 0) {  // nothing to improve on
    out.values = std::move(nearest);
    return out;
  }

  // Rows: all of them every step when they fit in one batch, else a uniform
  // draw with replacement per step.
  const bool full = p.rows <= o.batch_rows;
  const int64_t b = full ? p.rows : o.batch_rows;
  std::vector<int64_t> rows(static_cast<std::size_t>(b));
  std::vector<float> x(static_cast<std::size_t>(b * p.k)), t(static_cast<std::size_t>(b * p.n)),
      y(t.size()), grad_y(t.size()), w_soft(count), grad_w(count);
  if (full) {
    for (int64_t i = 0; i < b; ++i) rows[static_cast<std::size_t>(i)] = i;
    gather(p, rows, x.data(), t.data());
  }
  std::mt19937_64 rng(seed);
  std::shared_ptr<sparq::detail::PackedWeightsF32Data> w_scratch, x_scratch;

  const int64_t warm = static_cast<int64_t>(o.warm_start * static_cast<double>(o.iterations));
  const double kStretch = kZeta - kGamma;
  constexpr double kAdam1 = 0.9, kAdam2 = 0.999, kAdamEps = 1e-8;
  double adam1_power = 1, adam2_power = 1;
  // h(V), its slope dh/dV, and whether floor + h lies inside [qmin, qmax]
  // (outside, the clamp passes no gradient).
  auto soft = [&](std::size_t i, double& slope, bool& inside) {
    const double sig = 1.0 / (1.0 + std::exp(-static_cast<double>(v[i])));
    const double raw = sig * kStretch + kGamma;
    slope = raw > 0 && raw < 1 ? sig * (1 - sig) * kStretch : 0.0;
    const double h = std::clamp(raw, 0.0, 1.0);
    const double q = floor_q[i] + h;
    inside = q >= kQmin && q <= kQmax;
    return h;
  };
  // The per-weight updates split over output rows (no reduction: the same
  // bits for every thread count); a small layer's are cheaper than waking
  // a thread team every step.
  constexpr std::size_t kParallelWeights = std::size_t{1} << 15;
  const int threads = count >= kParallelWeights ? detail::parallel_threads(p.n) : 1;
  // f(i, h, slope, inside) for every weight i, h = soft(i, slope, inside),
  // output rows split over `threads` (each weight is written by one thread).
  auto for_each_weight = [&](auto&& f) {
    detail::for_each_block(p.n, threads, [&](int64_t row) {
      for (std::size_t i = static_cast<std::size_t>(row * p.k);
           i < static_cast<std::size_t>((row + 1) * p.k); ++i) {
        double slope;
        bool inside;
        const double h = soft(i, slope, inside);
        f(i, h, slope, inside);
      }
    });
  };
  for (int64_t it = 0; it < o.iterations; ++it) {
    if (!full) {
      for (int64_t& r : rows) r = static_cast<int64_t>(rng() % static_cast<uint64_t>(p.rows));
      gather(p, rows, x.data(), t.data());
    }
    for_each_weight([&](std::size_t i, double h, double, bool) {
      w_soft[i] = static_cast<float>(
          scale_of[i] * std::clamp(floor_q[i] + h, static_cast<double>(kQmin), double{kQmax}));
    });
    // Reconstruction: y = x~ W~^T + b~; d(mean_rows ||f(y) - t||^2)/dy, then
    // dL/dW~ = (dL/dy)^T x~ (the GEMM with x~ as [k][b] weights).
    {
      const PackedWeightsF32 packed = sparq::detail::pack_weights_f32_scratch(
          w_scratch, w_soft.data(), p.n, p.k, WeightLayout::out_in);
      sgemm(x.data(), b, p.k, p.k, packed, p.bias, false, y.data(), p.n);
    }
    // The reconstruction term is divided by its value with round-to-nearest
    // weights (mean over the calibration rows): lambda then weighs the same
    // against it whatever the scale of the layer's outputs (adaround.hpp).
    const auto scale = static_cast<float>(2.0 * static_cast<double>(p.rows) /
                                          (out.nearest_error * static_cast<double>(b)));
    for (int64_t r = 0; r < b; ++r) {
      for (int64_t c = 0; c < p.n; ++c) {
        const std::size_t i = static_cast<std::size_t>(r * p.n + c);
        float slope;
        const float fy = activate(y[i], p.act, slope);
        grad_y[static_cast<std::size_t>(c * b + r)] = scale * slope * (fy - t[i]);  // [n][b]
      }
    }
    {
      const PackedWeightsF32 packed_x = sparq::detail::pack_weights_f32_scratch(
          x_scratch, x.data(), p.k, b, WeightLayout::in_out, p.k);
      sgemm(grad_y.data(), p.n, b, b, packed_x, {}, false, grad_w.data(), p.k);
    }
    // Regulariser lambda * sum(1 - |2h - 1|^beta) after the warm start, beta
    // on a cosine from beta_start to beta_end.
    const bool regularise = it >= warm && o.lambda > 0;
    double beta = o.beta_start;
    if (regularise) {
      const double rel = static_cast<double>(it - warm) /
                         static_cast<double>(std::max<int64_t>(1, o.iterations - warm));
      beta =
          o.beta_end + 0.5 * (o.beta_start - o.beta_end) * (1 + std::cos(rel * std::numbers::pi));
    }
    adam1_power *= kAdam1;
    adam2_power *= kAdam2;
    const double step = o.learning_rate * std::sqrt(1 - adam2_power) / (1 - adam1_power);
    for_each_weight([&](std::size_t i, double h, double slope, bool inside) {
      double grad_h = inside ? static_cast<double>(grad_w[i]) * scale_of[i] : 0.0;
      if (regularise) {
        const double u = 2 * h - 1;
        const double mag = std::pow(std::fabs(u), beta - 1);
        grad_h -= o.lambda * beta * mag * (u < 0 ? -2.0 : 2.0);
      }
      const double g = grad_h * slope;
      adam_m[i] = static_cast<float>(kAdam1 * adam_m[i] + (1 - kAdam1) * g);
      adam_v[i] = static_cast<float>(kAdam2 * adam_v[i] + (1 - kAdam2) * g * g);
      v[i] = static_cast<float>(v[i] - step * adam_m[i] / (std::sqrt(adam_v[i]) + kAdamEps));
    });
  }

  out.values.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    double slope;
    bool inside;
    const double h = soft(i, slope, inside);
    out.values[i] =
        static_cast<int8_t>(std::clamp(floor_q[i] + (h >= 0.5 ? 1.0f : 0.0f), kQmin, kQmax));
    out.changed += out.values[i] != nearest[i];
  }
  out.adaround_error = output_error(p, out.values);
  // Where the learned rounding does no better on the calibration rows (an
  // error floor set by the input's quantization, too few steps), the
  // nearest rounding stays: AdaRound never makes a layer worse on its data.
  if (out.adaround_error >= out.nearest_error) {
    out.values = std::move(nearest);
    out.adaround_error = out.nearest_error;
    out.changed = 0;
  }
  return out;
}

/// The first `limit` rows of the calibration batches as one tensor.
Tensor calibration_tensor(std::span<const Tensor> batches, int64_t limit) {
  if (batches.empty()) fail("adaround: calibration holds no batch; expected >= 1");
  Tensor all;
  for (std::size_t i = 0; i < batches.size() && (all.shape.empty() || all.shape[0] < limit); ++i) {
    const Tensor& b = batches[i];
    if (b.rank() < 1 || b.shape[0] < 1 || checked_numel(b.shape, "adaround") != b.numel()) {
      fail("adaround: calibration batch {} (shape {}, {} values) must have >= 1 row", i,
           shape_to_string(b.shape), b.numel());
    }
    if (!all.shape.empty() &&
        !std::equal(b.shape.begin() + 1, b.shape.end(), all.shape.begin() + 1, all.shape.end())) {
      fail("adaround: calibration batch {} has shape {}, batch 0 {}: every row must have one shape",
           i, shape_to_string(b.shape), shape_to_string(all.shape));
    }
    const int64_t per = b.numel() / b.shape[0];
    const int64_t have = all.shape.empty() ? 0 : all.shape[0];
    const int64_t take = std::min(b.shape[0], limit - have);
    if (all.shape.empty()) all.shape = b.shape, all.shape[0] = 0;
    all.data.insert(all.data.end(), b.data.begin(), b.data.begin() + take * per);
    all.shape[0] += take;
  }
  return all;
}

/// The FP32 layer index a unit starts at (its name), checked.
int64_t unit_start(const QuantizedUnit& u, std::size_t layers) {
  int64_t start = -1;
  const char* end = u.name.data() + u.name.size();
  const auto [ptr, ec] = std::from_chars(u.name.data(), end, start);
  if (ec != std::errc() || ptr != end || start < 0 || static_cast<std::size_t>(start) >= layers) {
    fail(
        "adaround: unit name '{}' is not the index of a layer of the FP32 model ({} layers); "
        "pass the Sequential the model was quantized from",
        u.name, layers);
  }
  return start;
}

/// Every int8 value must be floor or ceil of w * (1 / s): else `model` was
/// not quantized from these weights.
void check_rounding(const std::string& unit, std::span<const int8_t> values, const float* w,
                    std::span<const float> scales, int64_t k) {
  for (std::size_t i = 0; i < values.size(); ++i) {
    const float t = w[i] * (1.0f / scales[i / static_cast<std::size_t>(k)]);
    const float lo = std::clamp(std::floor(t), kQmin, kQmax),
                hi = std::clamp(std::ceil(t), kQmin, kQmax);
    if (values[i] != lo && values[i] != hi) {
      fail(
          "adaround: unit '{}' weight {} is {} but the FP32 weight over its scale is {}: the "
          "model was not quantized from this FP32 model (pass the one given to the calibrator, "
          "after equalization if any)",
          unit, i, static_cast<int>(values[i]), t);
    }
  }
}

void check_dense(const std::string& unit, const QuantizedWeights& w) {
  if (w.kind() != "dense") {
    fail(
        "adaround: unit '{}' has '{}' weights; AdaRound rounds dense weights only (it would not "
        "keep another kind's pattern)",
        unit, w.kind());
  }
}

void check_static(const QuantizedUnit& u, QuantMode mode) {
  if (mode != QuantMode::static_) {
    fail(
        "adaround: unit '{}' ({}) is dynamic; AdaRound needs a static model (quantize_static), "
        "whose layer inputs have calibrated qparams",
        u.name, u.describe());
  }
}

/// x quantized to u8 with qp and back: the input a static layer sees.
Tensor layer_input(const Tensor& x, const QParams& qp) {
  Tensor out = x;
  Quantizer<uint8_t, Scheme::asymmetric>(qp).fake_quantize(x.data, out.data);
  return out;
}

/// The scales to build new weights with: one per output channel, or the
/// one per-tensor scale (QuantizedWeights::scales() repeats it per row).
std::vector<float> stored_scales(const QuantizedWeights& w) {
  return w.per_channel() ? std::vector<float>(w.scales().begin(), w.scales().end())
                         : std::vector<float>{w.scales()[0]};
}

AdaRoundLayer round_linear(QLinear& q, const std::string& name, const Linear& fp32, const Tensor& x,
                           const Tensor& target, const AdaRoundOptions& o, uint64_t seed) {
  if (fp32.in_features != q.in_features || fp32.out_features != q.out_features) {
    fail("adaround: unit '{}' is {} -> {} but the FP32 layer {}", name, q.in_features,
         q.out_features, describe(Layer(fp32)));
  }
  check_dense(name, *q.weights);
  const std::span<const float> per_row = q.weights->scales();
  check_rounding(name, q.weights->values(), fp32.weight.data.data(), per_row, q.in_features);
  RoundingProblem p;
  p.n = q.out_features;
  p.k = q.in_features;
  if (x.rank() < 1 || x.shape.back() != p.k) {
    fail("adaround: unit '{}' gets inputs of shape {}; expected [..., {}]", name,
         shape_to_string(x.shape), p.k);
  }
  p.rows = x.numel() / p.k;
  p.weights = fp32.weight.data.data();
  p.scales = per_row;
  p.bias = q.bias;
  p.act = q.activation;
  p.input = [&](int64_t r, float* dst) { std::copy_n(x.data.data() + r * p.k, p.k, dst); };
  p.target = [&](int64_t r) { return target.data.data() + r * p.n; };
  Rounded r = learn_rounding(p, o, seed);
  q.weights = make_dense_weights(std::move(r.values), p.n, p.k, stored_scales(*q.weights));
  q.prepare();
  const double rows = static_cast<double>(p.rows);
  return {name, p.n * p.k, r.changed, r.nearest_error / rows, r.adaround_error / rows};
}

AdaRoundLayer round_conv(QConv2d& q, const std::string& name, const Conv2d& fp32, const Tensor& x,
                         const Tensor& target, const AdaRoundOptions& o, uint64_t seed) {
  const Conv2dGeometry& g = q;
  const Conv2dGeometry& f = fp32;
  const auto fields = [](const Conv2dGeometry& c) {
    return std::tie(c.in_channels, c.out_channels, c.kernel_h, c.kernel_w, c.stride_h, c.stride_w,
                    c.pad_h, c.pad_w, c.dilation_h, c.dilation_w, c.groups);
  };
  if (fields(g) != fields(f) || static_cast<int64_t>(q.weights.size()) != g.groups) {
    fail("adaround: unit '{}' ({} groups of weights) does not match the FP32 layer {}", name,
         q.weights.size(), describe(Layer(fp32)));
  }
  detail::check_nhwc(x.shape, g.in_channels, "adaround");
  const int64_t h = x.shape[1], w = x.shape[2], oh = g.out_h(h), ow = g.out_w(w);
  const int64_t patch = g.patch_size(), og = g.out_channels / g.groups;
  const int64_t cg = g.in_channels / g.groups;
  // Scales per output channel (per_row) and as split_groups takes them
  // (one per output, or the per-tensor one that every group shares).
  std::vector<float> per_row, scales;
  for (const auto& wg : q.weights) {
    check_dense(name, *wg);
    per_row.insert(per_row.end(), wg->scales().begin(), wg->scales().end());
    if (wg->per_channel() || scales.empty()) {
      const std::vector<float> s = stored_scales(*wg);
      scales.insert(scales.end(), s.begin(), s.end());
    }
  }
  std::vector<int8_t> values;
  AdaRoundLayer report{name, g.out_channels * patch, 0, 0, 0};
  const double rows = static_cast<double>(x.shape[0] * oh * ow);
  for (int64_t group = 0; group < g.groups; ++group) {
    const float* wf = fp32.weight.data.data() + group * og * patch;
    const std::span<const float> sg(per_row.data() + group * og, static_cast<std::size_t>(og));
    check_rounding(name, q.weights[static_cast<std::size_t>(group)]->values(), wf, sg, patch);
    RoundingProblem p;
    p.n = og;
    p.k = patch;
    p.rows = x.shape[0] * oh * ow;
    p.weights = wf;
    p.scales = sg;
    if (!q.bias.empty()) p.bias = std::span<const float>(q.bias).subspan(group * og, og);
    p.act = q.activation;
    p.input = [&, group](int64_t r, float* dst) {
      detail::im2col(x.data.data(), h, w, g.in_channels, g, group * cg, cg, oh, ow, 0.0f, r, r + 1,
                     dst);
    };
    p.target = [&, group](int64_t r) {
      return target.data.data() + r * g.out_channels + group * og;
    };
    Rounded r = learn_rounding(p, o, seed + static_cast<uint64_t>(group));
    values.insert(values.end(), r.values.begin(), r.values.end());
    report.changed += r.changed;
    report.nearest_error += r.nearest_error / rows;
    report.adaround_error += r.adaround_error / rows;
  }
  q.weights = detail::split_groups(values, scales, g);
  q.prepare();
  return report;
}

}  // namespace

QuantizedModel adaround(const QuantizedModel& model, const Sequential& fp32,
                        std::span<const Tensor> calibration, const AdaRoundOptions& options,
                        std::vector<AdaRoundLayer>* report) {
  validate(options);
  const Tensor inputs = calibration_tensor(calibration, options.calibration_rows);
  QuantizedModel out = model;
  auto& units = out.units();
  std::vector<int64_t> starts;
  for (const QuantizedUnit& u : units) {
    starts.push_back(unit_start(u, fp32.size()));
    if (starts.size() > 1 ? starts.back() <= starts[starts.size() - 2] : starts.back() != 0) {
      fail("adaround: unit '{}' does not follow the previous unit's layers in the FP32 model",
           u.name);
    }
  }
  if (report) report->clear();
  // x_fp32: the FP32 model's activations; x_q: the quantized model's
  // (with the units before rounded by AdaRound), dequantized.
  Tensor x_fp32 = inputs, x_q = inputs;
  for (std::size_t i = 0; i < units.size(); ++i) {
    QuantizedUnit& u = units[i];
    const std::size_t end =
        i + 1 < units.size() ? static_cast<std::size_t>(starts[i + 1]) : fp32.size();
    Sequential layers;
    Tensor y_fp32 = x_fp32;
    for (std::size_t l = static_cast<std::size_t>(starts[i]); l < end; ++l) {
      layers.add(fp32[l]);
      y_fp32 = forward(fp32[l], y_fp32);
    }
    fold_batchnorm(layers);  // the unit's main layer as quantize_static folds it
    const uint64_t seed = options.seed + 0x9E3779B97F4A7C15ull * (i + 1);
    // A QLinear and a QConv2d unit are rounded alike: only the FP32 layer
    // they must come from and the routine that rounds them differ.
    auto round_unit = [&](auto& q, const auto* fp32_layer, const char* kind, auto round_layer) {
      check_static(u, q.mode);
      if (!fp32_layer)
        fail("adaround: unit '{}' is a {} but FP32 layer {} is {}", u.name, kind, starts[i],
             describe(layers[0]));
      AdaRoundLayer r = round_layer(q, u.name, *fp32_layer, layer_input(x_q, q.input_qparams),
                                    y_fp32, options, seed);
      if (report) report->push_back(std::move(r));
    };
    if (auto* ql = std::get_if<QLinear>(&u.op)) {
      round_unit(*ql, std::get_if<Linear>(&layers[0]), "QLinear", round_linear);
    } else if (auto* qc = std::get_if<QConv2d>(&u.op)) {
      round_unit(*qc, std::get_if<Conv2d>(&layers[0]), "QConv2d", round_conv);
    }
    x_q = out.run_unit(i, x_q);
    x_fp32 = std::move(y_fp32);
  }
  return out;
}

}  // namespace sparq::nn
