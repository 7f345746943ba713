// AdaRound: learned rounding of a quantized model's INT8 weights (Nagel et
// al. 2020, "Up or Down? Adaptive Rounding for Post-Training Quantization").
//
//   nn::Calibrator cal(fp32);  for (const nn::Tensor& b : batches) cal.observe(b);
//   nn::QuantizedModel q = nn::quantize_static(cal, {.weight_granularity = ...});
//   nn::QuantizedModel r = nn::adaround(q, fp32, batches);   // same layers, new int8 weights
//
// Rounding every weight to the nearest grid point minimises each weight's own
// error, not the layer's output error: the errors of a row add up in every
// output. AdaRound chooses, per weight, floor or ceil of w / s (s: the weight
// scale the quantizer chose, per tensor or per channel, which stays) so that
// the layer's output on calibration data moves as little as possible.
//
// Per Linear/Conv2d unit of the model, in model order, it minimises over V
// (one real per weight) with Adam:
//
//   mean over rows of || f(W x + b) - f(W~ x~ + b~) ||^2  +  lambda * sum (1 - |2 h(V) - 1|^beta)
//   W~ = s * clamp(floor(w / s) + h(V), qmin, qmax)
//   h(V) = clip(sigmoid(V) * (zeta - gamma) + gamma, 0, 1),  zeta = 1.1, gamma = -0.1
//
// where x is the layer's FP32 input (the FP32 model's activations) and x~
// the input the quantized model feeds it: the previous units already
// quantized and rounded by AdaRound, and the u8 quantization of the layer's
// input itself. That is the paper's asymmetric reconstruction (its eq. 25):
// the rounding also absorbs part of the error the earlier layers made, which
// the paper measured to help over FP32 inputs. f is the unit's fused
// activation (ReLU, ReLU6 or none), b the FP32 (BatchNorm-folded) bias and
// b~ the quantized unit's bias (bias correction, if it was applied, stays).
// The output's own u8 quantization is not part of the loss.
//
// One departure from the paper: the reconstruction term is divided by its
// value with round-to-nearest weights (on the calibration rows), so lambda
// weighs the same against it whatever the scale of the layer's outputs. With
// the paper's absolute loss, small outputs (the Fashion-MNIST models', whose
// per-row errors are ~1e-5) left the reconstruction gradient thousands of
// times below the regulariser's, which then simply rounded to nearest.
// And where the learned rounding does not lower the error on the
// calibration rows (a layer whose error is mostly its input's u8 rounding),
// the layer keeps the nearest rounding: never worse on its own data.
//
// V starts where h(V) equals the fractional part of w / s (the soft weight
// is the FP32 weight). For the first warm_start of the iterations only the
// reconstruction term acts; then beta decays from beta_start to beta_end on
// a cosine schedule, the regulariser pushing every h(V) to 0 or 1. The final
// integer is floor(w / s) + (h(V) >= 0.5), clamped to [-128, 127]: floor or
// ceil of w / s, never farther. w / s is computed as the quantizer does
// (w * (1 / s) in float32, docs/design.md "Rounding").
//
// The layers keep their kind, scales, bias, qparams and kernel path: only
// their int8 values change, so save / load and every kernel work unchanged.
// The result is deterministic for a seed on one ISA (rows are sampled from
// the seed; the FP32 GEMM the gradients run on sums in an ISA's tile order,
// so another ISA can round a gradient differently) and identical for every
// thread count (sparq's FP32 GEMM splits no reduction).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sparq/nn/quantized.hpp"
#include "sparq/nn/sequential.hpp"
#include "sparq/nn/tensor.hpp"

namespace sparq::nn {

struct AdaRoundOptions {
  /// Adam steps per layer (per group of a grouped convolution). The paper
  /// runs 10,000 at a step size of 1e-3; sparq's default is 1,000 at 1e-2,
  /// which lets V travel as far in a tenth of the time.
  int64_t iterations = 1000;
  /// Rows of the layer's product (Linear: samples; Conv2d: output pixels)
  /// per step, drawn uniformly with replacement from all calibration rows;
  /// every row each step when there are no more than this.
  int64_t batch_rows = 256;
  /// Samples (rows of the batch axis of the calibration tensors, in order)
  /// used at most; the rest are ignored.
  int64_t calibration_rows = 1024;
  /// Weight of the rounding regulariser (the paper's lambda, 0.01).
  double lambda = 0.01;
  /// beta of the regulariser, annealed from beta_start to beta_end (20 -> 2).
  double beta_start = 20.0;
  double beta_end = 2.0;
  /// Fraction of the iterations before the regulariser starts (0.2).
  double warm_start = 0.2;
  double learning_rate = 1e-2;  ///< Adam's step size (beta1 0.9, beta2 0.999, eps 1e-8)
  uint64_t seed = 0;            ///< of the row sampling
};

/// What AdaRound did to one unit, measured on the calibration rows it used:
/// the mean over rows of the squared output error || f(W x + b) - f(W~ x~ + b~) ||^2
/// with the round-to-nearest weights and with the learned ones (the
/// quantized layer in FP32 arithmetic, before its output is quantized;
/// summed over the groups of a grouped convolution).
struct AdaRoundLayer {
  std::string name;           ///< the unit's name ("0", "4", ...)
  int64_t weights = 0;        ///< weights in the unit
  int64_t changed = 0;        ///< weights now rounded the other way than nearest
  double nearest_error = 0;   ///< with round-to-nearest weights
  double adaround_error = 0;  ///< with the learned weights
};

/// Returns `model` with the int8 weights of every static QLinear and
/// QConv2d unit replaced by AdaRound's (see above); other units are copied.
/// `fp32` is the FP32 model `model` was quantized from (same layers: the
/// unit names index its layers; BatchNorm after a Linear/Conv2d is folded as
/// quantize_static folds it), `calibration` batches of its input (never the
/// data the model is evaluated on). `report` (optional) gets one entry per
/// unit rounded.
///
/// Throws sparq::Error for invalid options (naming the field, its value and
/// the valid range), no calibration rows, a dynamic unit (AdaRound needs the
/// calibrated input qparams of a static model), weights of a kind other than
/// "dense" (a 2:4 sparse kind's pattern would not survive), or a model that
/// was not quantized from `fp32` (unit names that are not its layer indices,
/// other layer shapes, or int8 weights that are not floor or ceil of the
/// FP32 weights over the unit's scales).
QuantizedModel adaround(const QuantizedModel& model, const Sequential& fp32,
                        std::span<const Tensor> calibration, const AdaRoundOptions& options = {},
                        std::vector<AdaRoundLayer>* report = nullptr);

/// Checks `options` as adaround() does (throws sparq::Error on the first
/// invalid field).
void validate(const AdaRoundOptions& options);

}  // namespace sparq::nn
