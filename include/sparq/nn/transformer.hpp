// Transformer operators (FP32; Embedding also with int8 rows): embeddings, LayerNorm, GELU,
// softmax, tanh, token selection, reshape, mean and multi-head scaled dot-product attention, as
// graph operators (see the operator concept in graph_op.hpp), and add_bert_layer, the encoder layer
// nn::bert and the ViT example build from them. docs/transformers.md describes them with measured
// numbers.
//
// Activations are [batch][sequence][hidden]. Token ids and attention masks
// travel as FP32 tensors holding exact integers (ids up to 2^24).
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "sparq/gemm/packed_weights.hpp"
#include "sparq/nn/graph_op.hpp"
#include "sparq/nn/tensor.hpp"

namespace sparq::nn {

/// Row lookup: [batch][seq] ids -> [batch][seq][embedding_dim]; an id
/// outside [0, num_embeddings) or not an integer throws sparq::Error naming
/// the id. Two modes ignore the input's values and use only its shape (so
/// they can be fed the token ids):
///   positional     position s reads row s (BERT's position embeddings,
///                  position_ids = 0..seq-1); seq must be <= num_embeddings.
///   fixed_row >= 0 every position reads that row (BERT's token type
///                  embeddings when every token_type_id is 0).
///
/// The rows are FP32 (`weight`) or, after quantize_rows(), int8 with one
/// scale per row: what quantize_dynamic / quantize_static do to every
/// Embedding node unless an override keeps it FP32 (graph_quantized.hpp).
/// A lookup then dequantizes the row it reads: value = float(q) * scale.
struct Embedding {
  static constexpr const char* kind = "Embedding";
  static constexpr int arity = 1;
  int64_t num_embeddings = 0, embedding_dim = 0;
  bool positional = false;
  int64_t fixed_row = -1;  ///< -1: read the ids
  Tensor weight;           ///< [num_embeddings][embedding_dim]; empty once int8
  /// Int8 rows (empty while FP32): [num_embeddings][embedding_dim] row-major.
  std::vector<int8_t> rows_int8;
  /// One symmetric scale per row (empty while FP32).
  std::vector<float> row_scales;

  Embedding() = default;
  /// Throws sparq::Error for sizes < 1, or positional with a fixed_row, or a
  /// fixed_row outside [-1, num_embeddings).
  Embedding(int64_t num_embeddings, int64_t embedding_dim, bool positional = false,
            int64_t fixed_row = -1);
  std::string describe() const;
  Tensor forward(const Tensor& ids) const;
  /// Visits `weight`; an int8 Embedding has no FP32 parameter and visits
  /// nothing (its rows no longer load from or save to a state_dict).
  void for_each_param(const ParamVisitor& f);
  void init_parameters(std::mt19937_64& rng);

  bool int8_rows() const noexcept { return !row_scales.empty(); }
  /// Replaces the FP32 rows by int8 ones, symmetric per row with sparq's
  /// quantizer (quantize.hpp): scale_r = max(max|row r| / 127, FLT_EPSILON),
  /// q = round_half_even(w / scale_r) in [-127, 127] (narrow range, so
  /// max|row| is exactly 127 steps). Every element is then within half a
  /// step of its FP32 value. Throws sparq::Error when the rows are already
  /// int8, the weight does not have the [num_embeddings][embedding_dim]
  /// shape, or a row holds a NaN or an infinity.
  void quantize_rows();
  /// Bytes of the rows as forward() reads them: 4 per FP32 element, or 1
  /// per int8 element plus 4 per row scale.
  std::size_t weight_bytes() const noexcept;
};

/// Layer normalisation of the last axis (PyTorch's LayerNorm(normalized_shape)):
///   y = (x - mean) / sqrt(var + eps) * weight + bias, var biased (divided by n).
/// Mean and variance are accumulated in double (two passes), so the result is
/// within a few float ulps of PyTorch's.
struct LayerNorm {
  static constexpr const char* kind = "LayerNorm";
  static constexpr int arity = 1;
  int64_t normalized_shape = 0;
  float eps = 1e-5f;
  Tensor weight, bias;  ///< [normalized_shape], start at 1 and 0

  LayerNorm() = default;
  explicit LayerNorm(int64_t normalized_shape, float eps = 1e-5f);
  std::string describe() const;
  Tensor forward(const Tensor& x) const;
  void for_each_param(const ParamVisitor& f);
  void init_parameters(std::mt19937_64& rng);
};

/// GELU with PyTorch's formulas: exact 0.5 x (1 + erf(x / sqrt(2))) (the
/// default, Hugging Face's "gelu"), or approximate='tanh'
/// 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))).
struct GELU {
  static constexpr const char* kind = "GELU";
  static constexpr int arity = 1;
  bool tanh_approximation = false;
  std::string describe() const;
  Tensor forward(const Tensor& x) const;
};

/// Softmax over the last axis: exp(x - max) / sum, the sum in double. A row
/// that is all -inf gives NaN, as in PyTorch (Attention never produces one).
struct Softmax {
  static constexpr const char* kind = "Softmax";
  static constexpr int arity = 1;
  std::string describe() const { return "Softmax"; }
  Tensor forward(const Tensor& x) const;
};

struct Tanh {
  static constexpr const char* kind = "Tanh";
  static constexpr int arity = 1;
  std::string describe() const { return "Tanh"; }
  Tensor forward(const Tensor& x) const;
};

/// Picks one index of one axis and drops that axis: [B][S][H] -> [B][H] for
/// axis 1, index 0 (BERT's pooler reads the first token). Negative axis and
/// index count from the end, as torch.select.
struct SelectIndex {
  static constexpr const char* kind = "SelectIndex";
  static constexpr int arity = 1;
  int64_t axis = 1, index = 0;
  std::string describe() const;
  Tensor forward(const Tensor& x) const;
};

/// x.reshape(batch, *shape): the batch axis is kept, the others are
/// reinterpreted in row-major order (no data moves). One entry of `shape`
/// may be -1 (inferred). A ViT turns its NHWC patch embedding
/// [B][4][4][64] into tokens [B][16][64] with shape {16, 64}: the same
/// token order as PyTorch's conv(x).flatten(2).transpose(1, 2).
struct Reshape {
  static constexpr const char* kind = "Reshape";
  static constexpr int arity = 1;
  std::vector<int64_t> shape;  ///< every axis but the batch
  std::string describe() const;
  Tensor forward(const Tensor& x) const;
};

/// torch.mean(x, dim=axis): the mean over one axis, which is dropped (a
/// ViT's mean pooling over its tokens: [B][S][H] -> [B][H] for axis 1).
/// Summed in double. Negative axis counts from the end.
struct Mean {
  static constexpr const char* kind = "Mean";
  static constexpr int arity = 1;
  int64_t axis = 1;
  std::string describe() const;
  Tensor forward(const Tensor& x) const;
};

/// Multi-head scaled dot-product attention on already projected inputs:
/// inputs q, k, v ([B][S][hidden] each) and optionally a padding mask
/// ([B][S], 1 = attend, 0 = padding, Hugging Face's attention_mask).
/// Per head h (d = hidden / heads columns): softmax(q_h k_h^T / sqrt(d) + m) v_h,
/// heads concatenated back to [B][S][hidden]. q may have another sequence
/// length than k and v (cross attention); the mask is over the keys.
///
/// The mask follows Hugging Face BERT exactly: m[b][j] = (1 - mask[b][j]) *
/// lowest float (torch.finfo(float32).min), added to every query's score
/// for key j. A padded key gets exp(~-3.4e38) = 0 weight; a sequence whose
/// keys are all padding gets near-uniform weights over its keys (finite,
/// never NaN), as in Hugging Face, not -inf's NaN.
///
/// The two products per (batch, head) run on sparq's FP32 GEMM (sgemm.hpp)
/// or on its INT8 GEMM (gemm.hpp's linear_dynamic: the same ISA kernels as
/// every Linear, no code of their own), as `products` says:
///   fp32  (the default) q k^T and p v in FP32, in Graph::forward and in
///         quantized graphs alike: INT8 products measured 1.5x slower than
///         FP32 on AVX2 (Zen 3) and are unmeasured on VNNI/AMX;
///   int8  (opt-in: set it on the node, before quantizing for an INT8
///         graph, which keeps it) q and the probabilities p quantized per
///         row (u8, dynamic, per-token like a Linear's activations), k per
///         key row and v per head column (s8 symmetric, PyTorch's weight
///         formula, quantize_weights) and packed as the GEMM's "weights"
///         operand on every call (into reused buffers: detail::pack_attention_head);
///         the softmax between them stays FP32.
/// docs/transformers.md measures what INT8 products cost in accuracy (SQNR
/// against FP32 attention) and gain in time.
struct Attention {
  static constexpr const char* kind = "Attention";
  static constexpr int arity = -1;  ///< 3 (q, k, v) or 4 (q, k, v, mask)
  enum class Products { fp32, int8 };
  int64_t heads = 1;
  Products products = Products::fp32;

  Attention() = default;
  /// Throws sparq::Error for heads < 1.
  explicit Attention(int64_t heads);
  std::string describe() const;
  Tensor forward(std::span<const Tensor* const> inputs) const;
};

class Graph;
struct BertConfig;

/// Adds one Hugging Face BertLayer (post-norm encoder layer) reading node
/// `input` ([B][S][hidden]) to `graph`, with nodes named
/// <prefix>.attention.self.query|key|value (Linear), <prefix>.attention.self
/// (Attention, reading `mask` too unless it is empty),
/// <prefix>.attention.output.dense, a residual Add, .attention.output.LayerNorm,
/// <prefix>.intermediate.dense + GELU (erf), <prefix>.output.dense, Add,
/// <prefix>.output.LayerNorm; returns the last one's name. Uses the config's
/// hidden_size, num_heads, intermediate_size and layer_norm_eps. nn::bert
/// builds its encoder with it; a ViT reuses it without a mask.
std::string add_bert_layer(Graph& graph, const BertConfig& config, const std::string& prefix,
                           const std::string& input, const std::string& mask = {});

}  // namespace sparq::nn

namespace sparq::detail {
/// INT8 products: `rows` x `cols` floats at stride `ld` (with `transpose`,
/// their columns) quantized per row like quantize_weights and packed: the
/// same bytes, column sums and scales as pack_weights(quantize_weights(...)),
/// in buffers this thread reuses per `product` (0 or 1) while no other
/// handle to them is alive. Internal (tested by nn_attention_pack_test).
PackedWeights pack_attention_head(int product, const float* src, int64_t rows, int64_t cols,
                                  int64_t ld, bool transpose);
}  // namespace sparq::detail
