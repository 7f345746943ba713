// The post-training quantization workflow (PyTorch eager mode, in C++).
//
// Dynamic (no calibration data; activations quantized per call):
//   nn::QuantizedModel q = nn::quantize_dynamic(model);
//
// Static (calibrated activations, INT8 between layers):
//   nn::Calibrator cal(model);                     // or (model, CalibrationConfig{...})
//   for (const nn::Tensor& batch : calibration_batches) cal.observe(batch);
//   nn::QuantizedModel q = nn::quantize_static(cal, {.fallback_sqnr_db = 20.0});
//   std::cout << nn::layer_report(cal, q).table();
//
// Both fold BatchNorm into the preceding Conv/Linear and fuse ReLU/ReLU6 into
// the layer before it (see quantized.hpp); the FP32 model is not modified.
// Layer names in overrides and reports are the index of the first FP32 layer
// of a unit as a string ("0", "4", ...); the model input is named "input".
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "sparq/nn/quantized.hpp"
#include "sparq/nn/sequential.hpp"
#include "sparq/observe/observer.hpp"

namespace sparq::nn {

/// Per-layer choices, keyed by unit name.
struct LayerOverride {
  bool keep_fp32 = false;                           ///< leave this unit in FP32
  std::optional<Granularity> weight_granularity{};  ///< per tensor / per channel
};

struct DynamicConfig {
  Granularity weight_granularity = Granularity::per_channel;
  bool per_row_activations = false;  ///< one activation scale per row instead of per call
  std::map<std::string, LayerOverride> overrides{};
};

/// Quantizes every Linear and Conv2d with INT8 weights; activations are
/// quantized on the fly (u8, asymmetric, from each call's range) and outputs
/// are FP32. Throws sparq::Error for an override naming no unit.
QuantizedModel quantize_dynamic(const Sequential& model, const DynamicConfig& config = {});

struct CalibrationConfig {
  /// Observer of every activation unless overridden. Activations are always
  /// u8 asymmetric per tensor: the calibrator replaces `spec` accordingly
  /// (keeping reduce_range / quant_min / quant_max if set).
  ///
  /// The default, RangeMethod::automatic, chooses per activation: each of
  /// minmax, mse, entropy and percentile proposes a range from the
  /// histogram of the observed rows; the activation's FP32 values on the
  /// held-out rows (see holdout_samples) are quantized and dequantized with
  /// each proposal's qparams, and the proposal with the largest SQNR
  /// against the FP32 values wins. That is the SQNR of the layer's output
  /// as far as its range decides it (the weights' and the input's
  /// quantization add the same noise to every candidate). Nothing is chosen
  /// on the data a model is evaluated on: only on rows of the calibration
  /// set the observers never saw. range_choice() and the layer report say
  /// which method each activation got and its held-out SQNR.
  ObserverConfig observer{.kind = ObserverKind::histogram, .method = RangeMethod::automatic};
  /// Observer per activation, keyed by the name of the unit whose output it
  /// observes, or "input" for the model input.
  std::map<std::string, ObserverConfig> per_layer{};
  /// Input samples (rows of the batch axis) kept for the SQNR fallback and
  /// layer_report(cal, q); 0 keeps none.
  int64_t keep_samples = 256;
  /// RangeMethod::automatic only (no row is held out otherwise): every
  /// fourth row of the calibration batches (rows 3, 7, 11, ... counted
  /// across batches) is held out from the observers, until this many rows
  /// are held; later rows all go to the observers. With no held-out row
  /// (fewer than 4 rows observed, or 0 here) each observer chooses on its
  /// own histogram (HistogramObserver::automatic_choice).
  int64_t holdout_samples = 256;
};

/// Which range an activation got and why (RangeMethod::automatic).
struct RangeChoice {
  RangeMethod method = RangeMethod::minmax;  ///< the method whose range is used
  /// SQNR of the activation quantized with that range, in dB: on the held-out
  /// rows, or on the observer's own histogram when `held_out` is false; NaN
  /// for an activation whose method was fixed (not automatic).
  double sqnr_db = 0;
  bool held_out = false;
  /// Every candidate and its SQNR, in the order minmax, mse, entropy,
  /// percentile (empty when the method was fixed).
  std::vector<std::pair<RangeMethod, double>> candidates{};
};

/// Runs the FP32 model (BatchNorm folded) on calibration batches and records
/// each activation in its observer.
class Calibrator {
 public:
  explicit Calibrator(const Sequential& model, const CalibrationConfig& config = {});
  Calibrator(Calibrator&&) noexcept;
  Calibrator& operator=(Calibrator&&) noexcept;
  ~Calibrator();

  /// Observes one batch; returns the FP32 model output (free: it was computed).
  Tensor observe(const Tensor& batch);
  int64_t batches_observed() const noexcept;

  /// Names of the observed activations, "input" first.
  std::vector<std::string> activation_names() const;
  /// The calibrated qparams of an activation (throws for an unknown name or
  /// before any batch was observed).
  QParams qparams(const std::string& activation) const;
  /// The range method an activation's qparams come from (for the automatic
  /// method: which candidate won and the SQNR of each). Throws like qparams().
  RangeChoice range_choice(const std::string& activation) const;
  /// Rows held out from the observers for RangeMethod::automatic.
  int64_t held_out_rows() const noexcept;
  const Observer& observer(const std::string& activation) const;

  const Sequential& model() const noexcept;  ///< the original (unfolded) model
  const std::vector<Tensor>& kept_samples() const noexcept;

  struct Impl;
  const Impl& impl() const noexcept { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

struct StaticConfig {
  Granularity weight_granularity = Granularity::per_channel;
  std::map<std::string, LayerOverride> overrides{};
  /// Automatic fallback: a unit whose isolated output SQNR (quantized unit on
  /// the FP32 input vs the FP32 unit, on the calibrator's kept samples) is
  /// below this many dB stays FP32. Unset: no fallback.
  std::optional<double> fallback_sqnr_db{};
  /// Empirical bias correction: for every quantized Linear/Conv2d, the mean
  /// per output channel of (W_q - W) x over the calibrator's kept samples
  /// (x: the unit's FP32 input) is subtracted from the bias, removing the
  /// mean output shift that rounding the weights introduces (Nagel et al.,
  /// "Data-Free Quantization", 2019, in its empirical form). Needs kept
  /// samples (CalibrationConfig::keep_samples > 0), else sparq::Error.
  bool bias_correction = false;
};

/// Cross-layer equalization (Nagel et al. 2019) of every pair
///   Linear/Conv2d -> ReLU [-> MaxPool2d] -> Linear/Conv2d
/// (BatchNorm folded first): output channel i of the first layer is divided
/// by s_i = sqrt(r1_i / r2_i) and input channel i of the second multiplied
/// by it, where r1_i is the largest |weight| of that output channel and r2_i
/// of that input channel (over every output, kernel position and, with
/// groups, only the outputs of its group). ReLU and max pooling commute with
/// a positive scale, so the FP32 function is unchanged (to float rounding)
/// while both channels' weight ranges become sqrt(r1_i r2_i): per-tensor
/// weight scales stop crushing small channels (depthwise-separable
/// networks). Channels with r1_i or r2_i = 0 keep s_i = 1. Returns the
/// equalized model (BatchNorm folded: same layers minus the folded
/// BatchNorms); `pairs` (optional) gets the number of pairs equalized.
Sequential equalize_cross_layer(const Sequential& model, int* pairs = nullptr);

/// A complete static-quantization recipe: how to calibrate the activations
/// and how to quantize the weights.
///
///   const nn::QConfig qc = nn::QConfig::pytorch_x86();
///   nn::Calibrator cal(model, qc.calibration);
///   for (const nn::Tensor& b : batches) cal.observe(b);
///   nn::QuantizedModel q = nn::quantize_static(cal, qc.quantization);
///
/// The presets reproduce torch.ao.quantization.get_default_qconfig(backend)
/// of PyTorch 1.13, observer by observer:
///   backend   activations (quint8, per_tensor_affine)       weights (qint8, symmetric)
///   x86       HistogramObserver(reduce_range=True)          PerChannelMinMaxObserver
///   fbgemm    (the same as x86)
///   onednn    HistogramObserver(reduce_range=False)         PerChannelMinMaxObserver
///   qnnpack   HistogramObserver(reduce_range=False)         MinMaxObserver (per tensor)
/// sparq's HistogramObserver with RangeMethod::mse is PyTorch's L2 search
/// (256 destination bins, as PyTorch) on sparq's exact grid, which is up to
/// 2x coarser than PyTorch's: ranges agree to about a bin, not bit for bit.
/// sparq's weights are always s8 symmetric from their min/max, which is
/// PyTorch's weight observers' formula. `automatic()` is sparq's default.
struct QConfig {
  CalibrationConfig calibration{};
  StaticConfig quantization{};

  static QConfig automatic() { return {}; }
  static QConfig pytorch_x86() { return pytorch(true, Granularity::per_channel); }
  static QConfig pytorch_fbgemm() { return pytorch_x86(); }
  static QConfig pytorch_onednn() { return pytorch(false, Granularity::per_channel); }
  static QConfig pytorch_qnnpack() { return pytorch(false, Granularity::per_tensor); }

 private:
  static QConfig pytorch(bool reduce_range, Granularity weights) {
    QConfig q;
    q.calibration.observer = ObserverConfig{
        .kind = ObserverKind::histogram,
        .spec = {.dtype = DType::u8, .scheme = Scheme::asymmetric, .reduce_range = reduce_range},
        .bins = 2048,
        .method = RangeMethod::mse};
    q.quantization.weight_granularity = weights;
    return q;
  }
};

/// Builds the static INT8 model from a calibrator. Throws sparq::Error if no
/// batch was observed, an override names no unit, or fallback_sqnr_db is set
/// but the calibrator kept no samples.
QuantizedModel quantize_static(const Calibrator& calibrator, const StaticConfig& config = {});
/// Same, with the weights of `model`, which must have the calibrated model's
/// architecture (same layer kinds and shapes; else sparq::Error).
QuantizedModel quantize_static(const Sequential& model, const Calibrator& calibrator,
                               const StaticConfig& config = {});

/// Error of one unit's output against FP32, over all given samples.
struct LayerError {
  std::string name;         ///< unit name
  std::string description;  ///< QuantizedUnit::describe()
  double sqnr_db = 0;       ///< end to end: quantized model up to here vs FP32 (inf if exact)
  double cosine = 0;        ///< cosine similarity of the same two tensors
  double max_abs_error = 0;
  double isolated_sqnr_db = 0;  ///< this unit alone on the FP32 input
  /// layer_report(calibrator, q) only: the range method of this unit's
  /// output activation ("" for units without one) and the SQNR that choice
  /// had on the held-out rows (NaN if the method was fixed, not automatic).
  std::string range_method{};
  double range_sqnr_db = std::numeric_limits<double>::quiet_NaN();
};

struct LayerReport {
  std::vector<LayerError> layers;
  /// A fixed-width table, one row per unit, worst end-to-end SQNR marked.
  std::string table() const;
};

/// Runs `fp32` and `q` on `batches` and compares every unit's output.
/// `q` must have been built from `fp32` (same units; else sparq::Error).
LayerReport layer_report(const Sequential& fp32, const QuantizedModel& q,
                         std::span<const Tensor> batches);
/// The same on the calibrator's kept samples.
LayerReport layer_report(const Calibrator& calibrator, const QuantizedModel& q);

/// The class of each row: for scores of shape [N, ...] (N rows of
/// numel / N scores each, e.g. logits [N, C]), the index of the largest
/// score of each row; the first one on ties. Throws sparq::Error for rank 0,
/// rows without scores, or a NaN score (naming the row). The view form takes
/// the output of the serving path (QuantizedModel::forward with a Workspace).
std::vector<int64_t> argmax(const Tensor& scores);
std::vector<int64_t> argmax(TensorView scores);

/// Fraction in [0, 1] of rows whose argmax equals their label. `labels` has
/// one entry per row (else sparq::Error naming both sizes); at least one row.
double accuracy(const Tensor& scores, std::span<const int64_t> labels);
double accuracy(const Tensor& scores, std::span<const uint8_t> labels);
/// Fraction of equal entries of two equally long, non-empty lists.
double accuracy(std::span<const int64_t> predictions, std::span<const int64_t> labels);

/// SQNR in dB of `test` against `reference`: 10 log10(sum ref^2 / sum (ref - test)^2);
/// +inf when they are equal. Sizes must match.
double sqnr_db(std::span<const float> reference, std::span<const float> test);

}  // namespace sparq::nn
