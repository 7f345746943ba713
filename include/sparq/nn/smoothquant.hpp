// SmoothQuant (Xiao et al., "SmoothQuant: Accurate and Efficient
// Post-Training Quantization for Large Language Models", 2022) for the
// Linear layers of an FP32 nn::Graph.
//
// Transformer activations have a few outlier channels, tens of times larger
// than the rest (LayerNorm gains, GELU outputs). One per-tensor activation
// scale then spends almost all of its 256 steps on those channels and
// rounds the others to a handful of levels. SmoothQuant moves that
// difficulty into the weights, which are quantized per output channel and
// have room to spare: for a Linear y = x W^T and a per-input-channel factor
// s_j > 0,
//   y = (x / s) (W * s)^T
// exactly, and with
//   s_j = max|x_j|^alpha / max|W_j|^(1 - alpha)
// (max|x_j| over calibration rows, max|W_j| over the weight's column j)
// the smoothed input's channels are alike in range while the weight columns
// grow by s_j. alpha = 0.5 splits the difficulty evenly; larger alpha moves
// more of it into the weights. sparq chooses alpha per layer from a grid by
// the layer's static INT8 output SQNR on held-out calibration batches, and
// leaves a layer unsmoothed when no alpha beats s = 1.
//
//   nn::Graph g = ...;                                 // FP32, trained
//   std::vector<std::vector<nn::Tensor>> calibration = ...;
//   nn::SmoothQuantReport r = nn::smooth_quant(g, calibration);
//   nn::GraphCalibrator cal(g);                        // then static INT8
//   for (const auto& batch : calibration) cal.observe(batch);
//   nn::QuantizedGraph q = nn::quantize_static(cal);
//
// The smoothed graph computes the same function as the original (to float
// rounding): x / s is only ever folded where it is exact, never into a
// LayerNorm whose output also feeds a residual Add (post-LN BERT and ViT,
// where that would change the residual stream). See smooth_quant.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "sparq/nn/graph_op.hpp"
#include "sparq/nn/tensor.hpp"

namespace sparq::nn {

/// y[..., c] = x[..., c] * scale[c]: a per-channel FP32 multiply over the
/// last axis. smooth_quant inserts one (scale = 1 / s) before Linear layers
/// whose input it cannot fold into the node that produces it.
struct ChannelScale {
  static constexpr const char* kind = "ChannelScale";
  static constexpr int arity = 1;
  Tensor scale;  ///< [channels], starts at 1

  ChannelScale() = default;
  /// Throws sparq::Error for channels < 1.
  explicit ChannelScale(int64_t channels);
  std::string describe() const;  ///< "ChannelScale(64)"
  /// Throws sparq::Error unless x's last axis has scale.size() channels.
  Tensor forward(const Tensor& x) const;
  void for_each_param(const ParamVisitor& f);
  void init_parameters(std::mt19937_64& rng);  ///< every scale 1
};

struct SmoothQuantOptions {
  /// alpha candidates, each in [0, 1], at least one. Each Linear group is
  /// scored unsmoothed (s = 1) and with every candidate; the highest static
  /// INT8 output SQNR on the held-out batches wins (ties: unsmoothed, then
  /// the earlier candidate), so smoothing is applied only where it helps.
  std::vector<double> alphas{0.25, 0.4, 0.5, 0.6, 0.75, 0.9};
  /// s_j is clamped to [min_scale, max_scale]: a channel that is all zeros
  /// in the calibration rows (or in the weights) must not get a factor of 0
  /// or infinity. 0 < min_scale <= 1 <= max_scale.
  double min_scale = 1e-3;
  double max_scale = 1e3;
  /// The last held_out_batches calibration batches only score the alpha
  /// candidates; the batches before them give max|x_j| and the static
  /// activation ranges the candidates are scored with. 0: score on the
  /// statistics batches themselves (no held-out data). Must leave at least
  /// one statistics batch.
  int64_t held_out_batches = 1;
};

/// One group of Linear nodes that read the same activation (BERT's query,
/// key and value share one): one smoothing factor per input channel.
struct SmoothQuantLayer {
  std::vector<std::string> linears;  ///< the Linear nodes smoothed
  std::string input;                 ///< the activation they read (node or graph input)
  bool smoothed = false;             ///< false: unsmoothed scored best, nothing changed
  double alpha = 0;                  ///< the chosen alpha (when smoothed)
  float max_abs_before = 0;          ///< max |x| over channels, statistics batches
  float max_abs_after = 0;           ///< max |x / s|
  /// Largest over smallest channel max|x_j| (channels with a non-zero max):
  /// how uneven the channels are, before and after.
  float channel_ratio_before = 0, channel_ratio_after = 0;
  /// Static INT8 output SQNR (dB, all the group's Linears together) on the
  /// held-out batches, without smoothing and with the chosen alpha.
  double sqnr_db_unsmoothed = 0, sqnr_db_smoothed = 0;
  /// Where x / s went: "LayerNorm 'ln' (weight, bias)", "Linear 'v' (output
  /// channels, through Attention 'attn')", "ChannelScale 'x.smooth' (new
  /// node)"; "-" when not smoothed.
  std::string folded_into;
};

struct SmoothQuantReport {
  std::vector<SmoothQuantLayer> layers;  ///< in graph order
  /// A fixed-width table, one row per group.
  std::string table() const;
};

class Graph;

/// Smooths every Linear node of `graph` (FP32) in place with factors
/// calibrated on `calibration` (batches, each one tensor per graph input,
/// as Graph::forward takes them). Linears reading the same activation x
/// share one s (max|W_j| over all their weights). W_j *= s_j for each of
/// them, and x / s is realised, in this order of preference, by folding:
///   - into the producing Linear's output channels (weight rows and bias),
///     when that Linear's output is read by nothing else; the search looks
///     through ops that act on each channel linearly and alone: an
///     Attention's value input (out[:, j] = sum_t P[:, t] v[t, j] per
///     head, so scaling channel j of v scales channel j of the output) and
///     a Mean over a non-channel axis;
///   - into a LayerNorm's weight and bias, when its output is read only by
///     the smoothed Linears (pre-LN models; not post-LN BERT, whose
///     LayerNorm output is also the residual);
///   - else into a new ChannelScale node "<x>.smooth" (scale 1 / s) that
///     the Linears read instead of x.
/// Groups are smoothed from the last to the first, so a producer's weights
/// already carry the factors folded into its rows when its own columns are
/// scored. Returns what was done per group. Throws sparq::Error for bad
/// options, fewer calibration batches than held_out_batches + 1, a graph
/// without Linear nodes, or batches the graph rejects.
SmoothQuantReport smooth_quant(Graph& graph, const std::vector<std::vector<Tensor>>& calibration,
                               const SmoothQuantOptions& options = {});

}  // namespace sparq::nn
