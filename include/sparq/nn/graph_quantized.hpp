// INT8 graphs: the quantization workflow of workflow.hpp on a Graph.
//
//   nn::Graph g = nn::resnet50();  nn::load_weights(g, "resnet50.safetensors");
//   nn::QuantizedGraph qd = nn::quantize_dynamic(g);          // no data needed
//   nn::GraphCalibrator cal(g);                                // static:
//   for (const nn::Tensor& batch : calibration) cal.observe(batch);
//   nn::QuantizedGraph qs = nn::quantize_static(cal);
//   nn::Tensor y = qs.forward(x);
//
// Overrides in the configs are keyed by node name ("layer1.0.conv1"). They
// name Linear/Conv2d nodes, or Embedding nodes with keep_fp32 (an Embedding
// takes no weight_granularity: its int8 rows always have one scale per row).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sparq/nn/graph.hpp"
#include "sparq/nn/workflow.hpp"

namespace sparq::nn {

class QuantizedGraph {
 public:
  struct Impl;
  QuantizedGraph();
  explicit QuantizedGraph(std::shared_ptr<const Impl> impl);

  /// FP32 in, FP32 out, like Graph::forward.
  Tensor forward(const Tensor& x) const;
  Tensor forward(const std::vector<Tensor>& inputs) const;
  /// forward() calling `after_step(i)` when step i is done (profiling:
  /// the wall time between calls is step i's).
  Tensor forward_visit(const std::vector<Tensor>& inputs,
                       const std::function<void(std::size_t step)>& after_step) const;
  /// The steps in order: what each runs, in a few words for grouping
  /// ("QConv2d 3x3", "QConv2d 1x1 + residual", "QConv2d dw 3x3", "QLinear",
  /// "MaxPool2d u8", "FP32 AdaptiveAvgPool2d", "INT8 Embedding" (int8
  /// rows), "INT8 Attention" (int8 products), "FP32 Attention", ...).
  std::vector<std::string> step_kinds() const;
  /// Bytes of the weights as the kernels read them (int8 + FP32-kept
  /// parameters; an int8 Embedding's rows and scales).
  std::size_t weight_bytes() const;
  /// One line per step: name, what runs (INT8 static/dynamic, FP32, fused ops).
  std::string summary() const;
  const Impl& impl() const { return *impl_; }

 private:
  std::shared_ptr<const Impl> impl_;
};

/// INT8 weights for every Linear/Conv2d node, activations quantized per call
/// (per row with config.per_row_activations); Embedding tables int8 with one
/// scale per row (Embedding::quantize_rows; keep_fp32 on the node keeps its
/// FP32 rows); everything else FP32. An Attention node keeps its `products`
/// (FP32 unless set to int8 on the node).
QuantizedGraph quantize_dynamic(const Graph& graph, const DynamicConfig& config = {});

/// Observes every node output of the BatchNorm-folded graph on calibration data.
class GraphCalibrator {
 public:
  explicit GraphCalibrator(const Graph& graph, const CalibrationConfig& config = {});
  GraphCalibrator(GraphCalibrator&&) noexcept;
  GraphCalibrator& operator=(GraphCalibrator&&) noexcept;
  ~GraphCalibrator();
  void observe(const Tensor& batch);
  void observe(const std::vector<Tensor>& inputs);
  int64_t batches_observed() const noexcept;
  /// Calibrated qparams of a node output (or a graph input) by name.
  QParams qparams(const std::string& name) const;
  /// The leading rows (CalibrationConfig::keep_samples in all) of the first
  /// batches, one tensor per graph input each: what the SQNR fallback and
  /// layer_report run on. Every input must then share the batch axis.
  const std::vector<std::vector<Tensor>>& kept_samples() const noexcept;

  struct Impl;
  const Impl& impl() const noexcept { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

/// Static INT8: u8 activations between INT8 nodes, Conv2d/Linear with
/// BatchNorm folded and ReLU fused, a residual Add (+ ReLU) fused into the
/// output stage of the convolution that produces one of its inputs, pooling
/// on u8, Embedding rows int8 as in quantize_dynamic. Nodes with no INT8
/// form run in FP32 between a dequantize and a quantize.
///
/// config.fallback_sqnr_db: an INT8 Linear/Conv2d step (with what is fused
/// into it) whose isolated output SQNR on the calibrator's kept samples (the
/// step alone on the FP32 values of its inputs vs the FP32 value it
/// replaces) is below the threshold stays FP32, as keep_fp32 on its node
/// would keep it. config.bias_correction is not available for graphs
/// (sparq::Error).
QuantizedGraph quantize_static(const GraphCalibrator& calibrator, const StaticConfig& config = {});

/// Per step of `q` (one row each, named after the step's value, e.g.
/// "layer1.0.relu" for a conv with its BatchNorm, Add and ReLU fused) on the
/// calibrator's kept samples: end-to-end SQNR (the quantized graph up to
/// that step vs the FP32 graph), the step's isolated SQNR on FP32 inputs,
/// cosine and max |error|, as layer_report does for a Sequential. `q` must
/// come from this calibrator; sparq::Error when it kept no samples.
LayerReport layer_report(const GraphCalibrator& calibrator, const QuantizedGraph& q);

}  // namespace sparq::nn
