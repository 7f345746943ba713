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
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
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
  ObserverConfig observer{.kind = ObserverKind::histogram};
  /// Observer per activation, keyed by the name of the unit whose output it
  /// observes, or "input" for the model input.
  std::map<std::string, ObserverConfig> per_layer{};
  /// Input samples (rows of the batch axis) kept for the SQNR fallback and
  /// layer_report(cal, q); 0 keeps none.
  int64_t keep_samples = 256;
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

/// SQNR in dB of `test` against `reference`: 10 log10(sum ref^2 / sum (ref - test)^2);
/// +inf when they are equal. Sizes must match.
double sqnr_db(std::span<const float> reference, std::span<const float> test);

}  // namespace sparq::nn
