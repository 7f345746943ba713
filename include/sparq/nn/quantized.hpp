// Quantized layers and the QuantizedModel that runs them.
//
// A QuantizedModel is produced by quantize_dynamic / quantize_static
// (workflow.hpp) or load_quantized (io.hpp); users normally only call
// forward(). Its steps ("units") correspond to the layers of the FP32
// Sequential it came from, after two fusions:
//   - a BatchNorm directly after a Linear/Conv2d is folded into it;
//   - a ReLU/ReLU6 directly after a Linear/Conv2d (or after its folded
//     BatchNorm) becomes that layer's fused activation, applied in the GEMM's
//     output stage (a clamp of the requantized value).
// A unit is named after the index of its first FP32 layer ("0", "3", ...),
// which is also the name used by per-layer overrides and the error report.
//
// Numeric scheme (PyTorch's x86/fbgemm eager-mode defaults):
//   weights      int8, symmetric (zero point 0), per output channel by
//                default (per tensor on request): s_w = max|w| / 127.5
//   activations  uint8, asymmetric, per tensor (static: calibrated; dynamic:
//                from each input's range, computed on the fly)
//   bias         FP32 in the model; static layers turn it into int32 in
//                accumulator units, round(b / (s_in * s_w[n])), at build time
//   static out   y_q = clamp(zp_out + M[n] * (acc + bias_q[n]), lo, hi) with
//                M[n] = s_in * s_w[n] / s_out in Q31 fixed point (RequantizeStage)
//                and [lo, hi] = [0, 255], [zp_out, 255] for ReLU or
//                [zp_out, min(255, zp_out + round(6 / s_out))] for ReLU6.
// Between two static layers activations stay uint8; MaxPool2d and Flatten work
// on uint8 directly and keep the qparams. A layer kept in FP32 (override or
// SQNR fallback) dequantizes its input and the next static layer quantizes
// again with its calibrated input qparams.
//
// Weight storage is behind the QuantizedWeights interface so that other
// packed kinds (a 2:4 sparse kind is planned) can be plugged into QLinear and
// QConv2d without changing them: a kind implements the three products below
// and names itself with kind(), which files record per layer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "sparq/gemm/gemm.hpp"
#include "sparq/gemm/packed_weights.hpp"
#include "sparq/nn/layers.hpp"
#include "sparq/quant/qparams.hpp"

namespace sparq::nn {

/// INT8 weights of one output-channel block (N outputs x K inputs) in some
/// packed form. Immutable after construction and safe to share between
/// threads and model copies.
class QuantizedWeights {
 public:
  virtual ~QuantizedWeights() = default;
  /// Short tag stored in model files ("dense").
  virtual std::string kind() const = 0;
  virtual int64_t n() const noexcept = 0;  ///< output channels
  virtual int64_t k() const noexcept = 0;  ///< inputs per output
  /// One scale per output channel (a per-tensor scale is repeated N times).
  virtual std::span<const float> scales() const noexcept = 0;
  virtual bool per_channel() const noexcept = 0;
  /// The int8 values, [N][K] row-major, zero where a sparse kind pruned.
  virtual std::span<const int8_t> values() const noexcept = 0;
  /// Bytes the kernels read for these weights (packed values + metadata).
  virtual std::size_t bytes() const noexcept = 0;

  /// c (u8, ldc) = requantized (A x W^T) through `stage`.
  virtual void gemm(const ActivationsU8& a, const RequantizeStage& stage, uint8_t* c,
                    int64_t ldc) const = 0;
  /// c (float, ldc) = dequantized (A x W^T) through `stage`.
  virtual void gemm(const ActivationsU8& a, const DequantizeStage& stage, float* c,
                    int64_t ldc) const = 0;
  /// c (int32, ldc) = the exact sums A x W^T, compensated for a's zero
  /// point, before any output stage (for callers that reduce the sums first,
  /// e.g. conv + max pool, and then call sparq::apply_stage).
  virtual void gemm(const ActivationsU8& a, int32_t* c, int64_t ldc) const = 0;
  /// PyTorch's dynamic Linear: x quantized on the fly (see sparq::linear_dynamic).
  virtual void linear_dynamic(const float* x, int64_t m, int64_t ldx, std::span<const float> bias,
                              float* y, int64_t ldy, const DynamicOptions& options) const = 0;
};

/// Dense INT8 weights on sparq's packed GEMM (kind "dense").
/// `values` is [n][k] row-major, `scales` has 1 or n finite positive values.
std::shared_ptr<const QuantizedWeights> make_dense_weights(std::vector<int8_t> values, int64_t n,
                                                           int64_t k, std::vector<float> scales);

/// Quantizes FP32 weights [n][k] symmetrically to int8 (per channel: one
/// scale per row) with PyTorch's formula s = max(max|w| / 127.5, eps),
/// q = clamp(round_half_even(w * (1 / s)), -128, 127): compute_qparams and
/// sparq::quantize, the one definition of docs/design.md.
struct QuantizedTensor {
  std::vector<int8_t> values;
  std::vector<float> scales;
};
QuantizedTensor quantize_weights(std::span<const float> w, int64_t n, int64_t k,
                                 Granularity granularity);
/// quantize_weights into `values` (w.size() int8, e.g. a reused buffer, so
/// a per-call caller does not allocate them); returns the scales.
std::vector<float> quantize_weights_into(std::span<const float> w, int64_t n, int64_t k,
                                         Granularity granularity, std::span<int8_t> values);

enum class QuantMode : uint8_t {
  dynamic,  ///< float in, float out; input quantized on the fly per call
  static_,  ///< u8 in (calibrated qparams), u8 out (calibrated qparams)
};
const char* mode_name(QuantMode m) noexcept;  // "dynamic", "static"

/// Quantized Linear: weights [out][in] int8.
struct QLinear {
  int64_t in_features = 0, out_features = 0;
  std::shared_ptr<const QuantizedWeights> weights;
  std::vector<float> bias;  ///< FP32, empty or out_features
  Activation activation = Activation::none;
  QuantMode mode = QuantMode::dynamic;
  bool per_row = false;    ///< dynamic only: one activation scale per row, not per call
  QParams input_qparams;   ///< static only: u8 asymmetric
  QParams output_qparams;  ///< static only: u8 asymmetric
  RequantizeStage stage;   ///< static only: derived by prepare()

  /// Validates the fields and (static) derives `stage` from the qparams, the
  /// weight scales and the bias. Throws sparq::Error on inconsistent fields.
  void prepare();
};

/// Quantized Conv2d (NHWC). Weights are stored per group: group g holds
/// out_channels/groups rows of patch_size() values in (kh, kw, c) order.
/// groups == 1 and grouped convolutions run im2col + the INT8 GEMM;
/// depthwise convolutions (groups == in_channels) run a direct integer loop
/// with the same requantization (bit-identical to what the GEMM would give).
struct QConv2d : Conv2dGeometry {
  std::vector<std::shared_ptr<const QuantizedWeights>> weights;  ///< one per group
  std::vector<float> bias;
  Activation activation = Activation::none;
  QuantMode mode = QuantMode::dynamic;
  QParams input_qparams, output_qparams;
  std::vector<RequantizeStage> stages;  ///< static only, one per group: derived by prepare()

  void prepare();
};

/// Layers kept in FP32 (by override, by the SQNR fallback, or because they
/// have no quantized form, e.g. a BatchNorm that follows no Conv/Linear).
struct Fp32Block {
  std::vector<Layer> layers;
};

/// One step of a quantized model.
struct QuantizedUnit {
  std::string name;  ///< index of the first FP32 layer it came from: "0", "3", ...
  std::variant<QLinear, QConv2d, MaxPool2d, Flatten, Fp32Block> op;

  /// "QLinear static relu (784 -> 256)", "FP32 [Linear(...)]", ...
  std::string describe() const;
  /// True for the units whose output the calibrator observes (everything
  /// except MaxPool2d and Flatten, which keep their input's qparams).
  bool observed() const noexcept;
};

/// The buffers of the serving path (QuantizedModel::forward with a
/// Workspace), kept from call to call: they grow to the largest batch seen
/// and stay. One per serving thread (a Workspace is not shared between
/// concurrent calls); movable, not copyable.
class Workspace {
 public:
  Workspace();
  ~Workspace();
  Workspace(Workspace&&) noexcept;
  Workspace& operator=(Workspace&&) noexcept;
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  /// Bytes its buffers hold now.
  std::size_t bytes() const noexcept;

 private:
  friend class QuantizedModel;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class QuantizedModel {
 public:
  QuantizedModel() = default;
  explicit QuantizedModel(std::vector<QuantizedUnit> units);

  /// FP32 in, FP32 out; same input layout as the FP32 model.
  Tensor forward(const Tensor& x) const;
  /// The serving path: reads the caller's buffer in place (no copy of the
  /// batch) and returns a view of the output held by `ws`, valid until `ws`
  /// is used again, moved or destroyed. Same values as forward(Tensor).
  /// Once `ws` has seen the largest batch, a call allocates nothing when
  /// the model's units are QLinear, QConv2d, MaxPool2d and Flatten and
  /// sparq::num_threads() is 1 (FP32 blocks, and OpenMP's team on more
  /// threads, may still allocate). Throws sparq::Error for a null `x.data`
  /// with a non-empty shape, and everything forward(Tensor) throws.
  TensorView forward(TensorView x, Workspace& ws) const;
  /// The dequantized output of every unit (for error reports).
  std::vector<Tensor> forward_trace(const Tensor& x) const;
  /// Runs unit i alone on an FP32 input (quantizing it with the unit's input
  /// qparams if static) and returns its dequantized output.
  Tensor run_unit(std::size_t i, const Tensor& x) const;

  const std::vector<QuantizedUnit>& units() const noexcept { return units_; }
  std::vector<QuantizedUnit>& units() noexcept { return units_; }
  /// Bytes of the weights as the kernels read them (int8 packed + FP32 kept layers).
  std::size_t weight_bytes() const;
  std::string summary() const;

 private:
  std::vector<QuantizedUnit> units_;
};

}  // namespace sparq::nn
