// Everything between the trainer (train.hpp) and sparq: moving weights into
// sparq::nn through a safetensors file, evaluating and timing sparq models,
// QAT with sparq's fake_quantize, 2:4 pruning with channel permutation, and
// running 2:4 layers on sparq's sparse INT8 GEMM.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sparq/nn/nn.hpp"
#include "train.hpp"

namespace fashion {

namespace nn = sparq::nn;

/// An empty sparq model with the trainer net's layers, index for index, so
/// both have the same state_dict names ("0.weight", "1.running_mean", ...).
nn::Sequential sparq_architecture(const Net& net);

/// The trainer's state_dict as sparq tensors (same names, same layouts).
nn::TensorMap to_tensor_map(const StateDict& sd);

/// Saves net's weights to a safetensors file (as a PyTorch user would with
/// export_from_pytorch.py) and builds the sparq FP32 model from that file
/// with nn::load_weights: the demo goes through the same import path.
nn::Sequential export_and_import(const Net& net, const std::filesystem::path& file);

/// Images [first, first+n) as a sparq input: [n][28][28][1] (NHWC) when
/// `spatial`, else [n][784]; pixels scaled to [0, 1] as in training.
nn::Tensor images_tensor(const Dataset& data, int64_t first, int64_t n, bool spatial);
/// Rows picked by index (the calibration set).
nn::Tensor images_tensor(const Dataset& data, const std::vector<int64_t>& indices, bool spatial);

using Forward = std::function<nn::Tensor(const nn::Tensor&)>;

/// Arg-max class of every image of `data`.
std::vector<uint8_t> predict(const Forward& f, const Dataset& data, bool spatial);
double accuracy_of(const std::vector<uint8_t>& predictions, const Dataset& data);

/// Median wall time (milliseconds) of f(x) over repeats: at least
/// `min_repeats` and until `budget_seconds` have passed (at most 2000).
double median_latency_ms(const Forward& f, const nn::Tensor& x, int min_repeats,
                         double budget_seconds);

/// QAT hooks that call sparq::fake_quantize: weights int8 symmetric per
/// output channel (the scheme quantize_static uses), activations uint8
/// asymmetric per tensor over the observed moving-average range.
std::shared_ptr<const QatHooks> make_qat_hooks();
/// Turns QAT on for every Linear/Conv2d of `net`.
void enable_qat(Net& net, const std::shared_ptr<const QatHooks>& hooks);

/// Replaces the activation qparams of a static model built from `qat_net`
/// (same layer indices) by the ranges the QAT observers learned, so the INT8
/// model rounds exactly where fine-tuning simulated it: each weighted unit's
/// input qparams come from its layer's QAT range and its output qparams
/// from the next weighted layer's (the last unit keeps its calibrated
/// output). Returns the number of units changed.
int apply_qat_ranges(nn::QuantizedModel& q, const Net& qat_net);

/// What 2:4 pruning did to one layer.
struct PruneInfo {
  int64_t layer = 0;
  std::string kind;
  int64_t outputs = 0, inputs = 0;
  bool pruned = false;    ///< false: K not a multiple of 4 (kept dense)
  bool permuted = false;  ///< input channels permuted (with the layer feeding them)
  double identity_l1 = 0, permuted_l1 = 0, total_l1 = 0;  ///< retained |w| of 2:4 masks
};

/// Prunes every Linear/Conv2d whose reduction length K is a multiple of 4 to
/// the 2:4 pattern along K, after searching a permutation of its input
/// channels (sparq::search_permutation) where they are the output channels
/// of an earlier layer: that layer's rows, bias and BatchNorm are permuted
/// to match, so the network computes the same function before pruning.
/// Masks are stored in the weights' Param::mask, which keeps them fixed
/// during fine-tuning.
std::vector<PruneInfo> prune_24(Net& net);

/// 2:4 INT8 weights on sparq's sparse GEMM (sparq/gemm/sparse_gemm.hpp),
/// plugged into nn::QLinear / nn::QConv2d through nn::QuantizedWeights.
/// Results are bit-identical to the dense kind on the same values.
std::shared_ptr<const nn::QuantizedWeights> make_sparse24_weights(
    const nn::QuantizedWeights& dense);

/// Switches every static/dynamic unit whose int8 weights satisfy 2:4 along K
/// to sparse-kernel weights; returns how many units run sparse.
int use_sparse_kernels(nn::QuantizedModel& q);
/// The inverse (nn::save knows only the "dense" kind so far).
int use_dense_kernels(nn::QuantizedModel& q);

/// Bytes a quantized model needs stored: int8 weight values (2:4 layers:
/// the kept half plus 2 index bits per kept value), FP32 scales, FP32
/// biases, 8 bytes per activation qparams, FP32 parameters of kept-FP32
/// layers. Unlike QuantizedModel::weight_bytes() (what the kernels read:
/// packed layouts padded to the microkernel tile, plus per-channel column
/// sums), this does not depend on the ISA; it is the size the issue's
/// bytes targets refer to.
std::size_t stored_bytes(const nn::QuantizedModel& q);

}  // namespace fashion
