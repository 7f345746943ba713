// Transformer operators (include/sparq/nn/transformer.hpp).
#include "sparq/nn/transformer.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "gemm/packed_weights_layout.hpp"
#include "gemm/sgemm_packed.hpp"
#include "kernels/elementwise_kernels.hpp"
#include "kernels/gemm_kernels.hpp"
#include "kernels/observe_kernels.hpp"
#include "nn/nn_internal.hpp"
#include "sparq/detail/packed_weights_data.hpp"
#include "sparq/error.hpp"
#include "sparq/gemm/gemm.hpp"
#include "sparq/gemm/sgemm.hpp"
#include "sparq/isa.hpp"
#include "sparq/nn/quantized.hpp"
#include "sparq/quant/qparams.hpp"
#include "sparq/quant/quantize.hpp"

namespace sparq::detail {

/// `rows` x `cols` floats at stride `ld` as the int8 "weights" operand of
/// the INT8 GEMM: quantized per row (symmetric s8, quantize_weights: the
/// one definition of docs/design.md) and packed out_in, byte for byte what
/// pack_weights makes (nn_attention_pack_test checks it). With `transpose`,
/// the weights' rows are the columns of src (v's head columns), so each
/// output column of p v gets its own scale. Runs on every head of every
/// call, so it reuses this product's (`product`: 0 scores, 1 p v) buffers
/// instead of allocating: the floats, the int8 values and the packed
/// weights, kept while no caller holds a handle to them.
PackedWeights pack_attention_head(int product, const float* src, int64_t rows, int64_t cols,
                                  int64_t ld, bool transpose) {
  thread_local std::vector<float> dense[2];
  thread_local std::vector<int8_t> values[2];
  thread_local std::shared_ptr<sparq::detail::PackedWeightsData> packed[2];
  std::vector<float>& f = dense[product];
  std::vector<int8_t>& q = values[product];
  f.resize(static_cast<std::size_t>(rows * cols));
  q.resize(f.size());
  for (int64_t r = 0; r < rows; ++r) {
    if (!transpose) {
      std::copy_n(src + r * ld, cols, f.data() + r * cols);
      continue;
    }
    for (int64_t c = 0; c < cols; ++c) f[static_cast<std::size_t>(c * rows + r)] = src[r * ld + c];
  }
  const int64_t n = transpose ? cols : rows, k = transpose ? rows : cols;
  std::vector<float> scales = nn::quantize_weights_into(f, n, k, Granularity::per_channel, q);
  const auto& kern = sparq::detail::gemm_kernels(active_isa());
  std::shared_ptr<sparq::detail::PackedWeightsData>& d = packed[product];
  if (d == nullptr || d.use_count() > 1 || d->isa != kern.isa || d->n != n || d->k != k) {
    // Zero-filled: the padding (k up to kp, channels up to a whole panel)
    // stays zero across reuses, which only rewrite the same n x k positions.
    d = sparq::detail::zeroed_packed_weights(n, k, kern);
    d->per_channel = n > 1;
  }
  const int64_t nr = d->nr, kr = d->kr;
  for (int64_t c = 0; c < n; ++c) {
    const int8_t* row = q.data() + c * k;
    int8_t* panel = d->panels.data() + (c / nr) * d->kp * nr + (c % nr) * kr;
    // One k-group (kr consecutive inputs) of this channel at a time.
    for (int64_t k0 = 0; k0 < k; k0 += kr) {
      std::copy_n(row + k0, std::min(kr, k - k0), panel + (k0 / kr) * nr * kr);
    }
    int32_t sum = 0;
    for (int64_t i = 0; i < k; ++i) sum += row[i];
    d->col_sums[static_cast<std::size_t>(c)] = sum;
  }
  d->scales = std::move(scales);
  return PackedWeights(d);
}

}  // namespace sparq::detail

namespace sparq::nn {

using sparq::detail::fail;

namespace {

/// Rows of a tensor whose last axis is `width` (the shape is checked by the caller).
int64_t rows_of(const Tensor& x, int64_t width) { return width == 0 ? 0 : x.numel() / width; }

/// The element-wise kernels of the active ISA (looked up once per call).
const sparq::detail::ElementwiseKernels& kernels() {
  return sparq::detail::elementwise_kernels(active_isa());
}

/// y = f(x) through one of the kernels' unary functions.
Tensor map_kernel(const Tensor& x, sparq::detail::UnaryF32Fn f) {
  Tensor y(x.shape);
  f(x.data.data(), y.data.data(), x.data.size());
  return y;
}

/// x viewed as [outer][size][inner] around one axis, and x's shape without
/// that axis (the result of SelectIndex and Mean).
struct AxisView {
  int64_t outer = 1, size = 0, inner = 1;
  std::vector<int64_t> dropped_shape;
};

/// Checks `axis` (negative counts from the end) against x's rank.
AxisView view_around_axis(const Tensor& x, int64_t axis, const char* who) {
  const int64_t rank = x.rank();
  if (axis < -rank || axis >= rank) {
    fail("{}: axis ({}) must be in [{}, {}) for input shape {}", who, axis, -rank, rank,
         shape_to_string(x.shape));
  }
  const auto a = static_cast<std::size_t>(axis < 0 ? axis + rank : axis);
  AxisView v;
  v.size = x.shape[a];
  for (std::size_t d = 0; d < a; ++d) v.outer *= x.shape[d];
  for (std::size_t d = a + 1; d < x.shape.size(); ++d) v.inner *= x.shape[d];
  v.dropped_shape = x.shape;
  v.dropped_shape.erase(v.dropped_shape.begin() + static_cast<std::ptrdiff_t>(a));
  return v;
}

// The two products of one attention head. q, k, v are [seq][ld] rows (the
// head's d columns of a [seq][hidden] tensor); scores are [seq_q][seq_k],
// the output [seq_q][ld].

/// The FP32 form of either product: c[m][n] (stride ldc) = a[m][k] (stride
/// lda) times b, the GEMM's "weights" operand (n outputs of k inputs stored
/// in `layout` at stride ldb), packed into this product's own thread-local
/// scratch (`product`: 0 for the scores, 1 for p v), so that neither
/// reallocates the other's buffer on every head.
void fp32_product(int product, const float* a, int64_t m, int64_t k, int64_t lda, const float* b,
                  int64_t n, WeightLayout layout, int64_t ldb, float* c, int64_t ldc) {
  thread_local std::shared_ptr<sparq::detail::PackedWeightsF32Data> scratch[2];
  const PackedWeightsF32 w =
      sparq::detail::pack_weights_f32_scratch(scratch[product], b, n, k, layout, ldb);
  sgemm(a, m, k, lda, w, {}, false, c, ldc);
}

/// scores[i][j] = q[i] . k[j]: k is the [seq_k][d] "weight" (out_in).
void fp32_scores(const float* q, const float* k, int64_t seq_q, int64_t seq_k, int64_t d,
                 int64_t ld, float* scores) {
  fp32_product(0, q, seq_q, d, ld, k, seq_k, WeightLayout::out_in, ld, scores, seq_k);
}

/// out[i][c] = sum_j p[i][j] v[j][c]: v is [K = seq_k][N = d] (in_out).
void fp32_weighted_values(const float* p, const float* v, int64_t seq_q, int64_t seq_k, int64_t d,
                          int64_t ld, float* out) {
  fp32_product(1, p, seq_q, seq_k, seq_k, v, d, WeightLayout::in_out, ld, out, ld);
}

/// INT8 q k^T: q quantized per row on the fly (linear_dynamic per_row), k
/// per key row; exact int32 sums, dequantized with row x key scales.
void int8_scores(const float* q, const float* k, int64_t seq_q, int64_t seq_k, int64_t d,
                 int64_t ld, float* scores) {
  const PackedWeights kw = sparq::detail::pack_attention_head(0, k, seq_k, d, ld, false);
  linear_dynamic(q, seq_q, ld, kw, {}, scores, seq_k, {.per_row = true});
}

/// INT8 p v: the probabilities per row (u8 from [0, max]: 0 is exact), v
/// per head column.
void int8_weighted_values(const float* p, const float* v, int64_t seq_q, int64_t seq_k, int64_t d,
                          int64_t ld, float* out) {
  const PackedWeights vw = sparq::detail::pack_attention_head(1, v, seq_k, d, ld, true);
  linear_dynamic(p, seq_q, seq_k, vw, {}, out, ld, {.per_row = true});
}
}  // namespace

// --------------------------------------------------------------- Embedding
Embedding::Embedding(int64_t num, int64_t dim, bool pos, int64_t row)
    : num_embeddings(num), embedding_dim(dim), positional(pos), fixed_row(row) {
  if (num < 1 || dim < 1) {
    fail("Embedding: num_embeddings ({}) and embedding_dim ({}) must be >= 1", num, dim);
  }
  if (row < -1 || row >= num) {
    fail("Embedding: fixed_row ({}) must be -1 (read the ids) or in [0, {})", row, num);
  }
  if (pos && row >= 0) {
    fail("Embedding: positional and fixed_row ({}) are exclusive: fixed_row must be -1", row);
  }
  weight = Tensor({num, dim});
}

std::string Embedding::describe() const {
  std::string mode;
  if (positional) mode = ", positional";
  if (fixed_row >= 0) mode = fmt::format(", row {}", fixed_row);
  if (int8_rows()) mode += ", int8 rows";
  return fmt::format("Embedding({}, {}{})", num_embeddings, embedding_dim, mode);
}

Tensor Embedding::forward(const Tensor& ids) const {
  const auto dim = static_cast<std::size_t>(embedding_dim);
  const auto rows = static_cast<std::size_t>(num_embeddings);
  if (int8_rows()) {
    if (rows_int8.size() != rows * dim || row_scales.size() != rows) {
      fail("Embedding: int8 rows ({} values, {} scales) must be [{}, {}] with {} scales",
           rows_int8.size(), row_scales.size(), num_embeddings, embedding_dim, num_embeddings);
    }
  } else if (weight.shape != std::vector<int64_t>{num_embeddings, embedding_dim}) {
    fail("Embedding: weight shape {} must be [{}, {}]", shape_to_string(weight.shape),
         num_embeddings, embedding_dim);
  }
  if (ids.rank() < 1)
    fail("Embedding: ids shape {} must have rank >= 1", shape_to_string(ids.shape));
  const int64_t seq = ids.shape.back();
  if (positional && seq > num_embeddings) {
    fail("Embedding: sequence length ({}) must be <= num_embeddings ({}) for positions", seq,
         num_embeddings);
  }
  std::vector<int64_t> shape = ids.shape;
  shape.push_back(embedding_dim);
  Tensor y(shape);
  for (int64_t i = 0; i < ids.numel(); ++i) {
    int64_t row = fixed_row;
    if (positional) {
      row = i % seq;
    } else if (fixed_row < 0) {
      const float id = ids.data[static_cast<std::size_t>(i)];
      // The comparison form also rejects NaN.
      if (!(id >= 0.0f && id < static_cast<float>(num_embeddings) && id == std::floor(id))) {
        fail("Embedding: id ({}) at flat index {} must be an integer in [0, {}) (the row count)",
             id, i, num_embeddings);
      }
      row = static_cast<int64_t>(id);
    }
    const auto r = static_cast<std::size_t>(row);
    float* out = y.data.data() + static_cast<std::size_t>(i) * dim;
    if (int8_rows()) {
      // The quantizer's dequantize kernel: float(q) * scale, one rounding,
      // the same bits on every ISA.
      sparq::detail::dequantize_tensor(DType::s8, rows_int8.data() + r * dim, out, dim,
                                       row_scales[r], 0);
    } else {
      std::copy_n(weight.data.data() + r * dim, dim, out);
    }
  }
  return y;
}

void Embedding::for_each_param(const ParamVisitor& f) {
  if (!int8_rows()) f("weight", weight);
}

void Embedding::init_parameters(std::mt19937_64& rng) {
  // torch.nn.Embedding: N(0, 1).
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& w : weight.data) w = normal(rng);
}

void Embedding::quantize_rows() {
  if (int8_rows()) fail("Embedding::quantize_rows: the rows are int8 already");
  const std::vector<int64_t> shape = {num_embeddings, embedding_dim};
  if (weight.shape != shape) {
    fail("Embedding::quantize_rows: weight shape {} must be [{}, {}]",
         shape_to_string(weight.shape), num_embeddings, embedding_dim);
  }
  const auto dim = static_cast<std::size_t>(embedding_dim);
  std::vector<float> mins(static_cast<std::size_t>(num_embeddings));
  std::vector<float> maxs(mins.size());
  // The dispatched observer min/max kernel (one pass per row, counting
  // NaN and infinity); the row is searched again only to name a bad value.
  const auto& observe = sparq::detail::observe_kernels(active_isa());
  for (std::size_t r = 0; r < mins.size(); ++r) {
    const float* row = weight.data.data() + r * dim;
    sparq::detail::MinMaxAccum acc{std::numeric_limits<float>::infinity(),
                                   -std::numeric_limits<float>::infinity(), 0, 0};
    observe.minmax(row, dim, &acc);
    if (acc.nan_count != 0 || acc.inf_count != 0) {
      const auto c = static_cast<std::size_t>(
          std::find_if(row, row + dim, [](float v) { return !std::isfinite(v); }) - row);
      fail("Embedding::quantize_rows: weight[{}][{}] ({}) must be finite", r, c, row[c]);
    }
    mins[r] = acc.min;
    maxs[r] = acc.max;
  }
  // Symmetric s8 per row over [-127, 127]: scale = max|row| / 127.
  const QuantSpec spec{.dtype = DType::s8,
                       .scheme = Scheme::symmetric,
                       .granularity = Granularity::per_channel,
                       .axis = 0,
                       .narrow_range = true};
  const ChannelQParams qp = compute_qparams(mins, maxs, spec);
  std::vector<int8_t> q(weight.data.size());
  sparq::quantize<int8_t>(weight.data, shape, spec, qp, q);
  rows_int8 = std::move(q);
  row_scales = qp.scales;
  weight = Tensor();
}

std::size_t Embedding::weight_bytes() const noexcept {
  return weight.data.size() * sizeof(float) + rows_int8.size() + row_scales.size() * sizeof(float);
}

// --------------------------------------------------------------- LayerNorm
LayerNorm::LayerNorm(int64_t n, float e) : normalized_shape(n), eps(e) {
  if (n < 1) fail("LayerNorm: normalized_shape ({}) must be >= 1", n);
  if (!(e > 0.0f) || !std::isfinite(e)) fail("LayerNorm: eps ({}) must be finite and > 0", e);
  weight = Tensor({n}, std::vector<float>(static_cast<std::size_t>(n), 1.0f));
  bias = Tensor({n});
}

std::string LayerNorm::describe() const {
  return fmt::format("LayerNorm({}, eps={})", normalized_shape, eps);
}

Tensor LayerNorm::forward(const Tensor& x) const {
  if (x.rank() < 1 || x.shape.back() != normalized_shape) {
    fail("LayerNorm: input shape {} must end with normalized_shape = {}", shape_to_string(x.shape),
         normalized_shape);
  }
  if (weight.numel() != normalized_shape || bias.numel() != normalized_shape) {
    fail("LayerNorm: weight ({}) and bias ({}) must have normalized_shape ({}) elements",
         weight.numel(), bias.numel(), normalized_shape);
  }
  Tensor y(x.shape);
  const auto n = static_cast<std::size_t>(normalized_shape);
  kernels().layer_norm_rows({x.data.data(), y.data.data(), y.data.size() / n, n, weight.data.data(),
                             bias.data.data(), eps});
  return y;
}

void LayerNorm::for_each_param(const ParamVisitor& f) {
  f("weight", weight);
  f("bias", bias);
}

void LayerNorm::init_parameters(std::mt19937_64& /*rng*/) {
  // torch.nn.LayerNorm: weight 1, bias 0 (no randomness).
  std::fill(weight.data.begin(), weight.data.end(), 1.0f);
  std::fill(bias.data.begin(), bias.data.end(), 0.0f);
}

// -------------------------------------------------------------- activations
std::string GELU::describe() const { return tanh_approximation ? "GELU(tanh)" : "GELU"; }

Tensor GELU::forward(const Tensor& x) const {
  const auto& k = kernels();
  return map_kernel(x, tanh_approximation ? k.gelu_tanh : k.gelu_erf);
}

Tensor Softmax::forward(const Tensor& x) const {
  if (x.rank() < 1 || x.shape.back() < 1) {
    fail("Softmax: input shape {} must have rank >= 1 and a last axis >= 1",
         shape_to_string(x.shape));
  }
  Tensor y = x;
  const int64_t n = x.shape.back();
  kernels().softmax_rows(y.data.data(), static_cast<std::size_t>(rows_of(x, n)),
                         static_cast<std::size_t>(n), 1.0f, nullptr);
  return y;
}

Tensor Tanh::forward(const Tensor& x) const { return map_kernel(x, kernels().tanh); }

// ------------------------------------------------------------- SelectIndex
std::string SelectIndex::describe() const {
  return fmt::format("SelectIndex(axis {}, index {})", axis, index);
}

Tensor SelectIndex::forward(const Tensor& x) const {
  const auto [outer, size, inner, shape] = view_around_axis(x, axis, "SelectIndex");
  if (index < -size || index >= size) {
    fail("SelectIndex: index ({}) must be in [{}, {}) for axis {} of input shape {}", index, -size,
         size, axis, shape_to_string(x.shape));
  }
  const int64_t i = index < 0 ? index + size : index;
  Tensor y(shape);  // [outer][inner]: x's [outer][i][inner]
  for (int64_t o = 0; o < outer; ++o) {
    std::copy_n(x.data.begin() + static_cast<std::ptrdiff_t>((o * size + i) * inner),
                static_cast<std::size_t>(inner),
                y.data.begin() + static_cast<std::ptrdiff_t>(o * inner));
  }
  return y;
}

// ------------------------------------------------------------------ Reshape
std::string Reshape::describe() const {
  std::string dims;
  for (int64_t d : shape) dims += fmt::format(", {}", d);
  return fmt::format("Reshape(batch{})", dims);
}

Tensor Reshape::forward(const Tensor& x) const {
  if (x.rank() < 1)
    fail("Reshape: input shape {} must have a batch axis", shape_to_string(x.shape));
  const int64_t batch = x.shape[0];
  int64_t known = 1, inferred = -1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1 && inferred < 0) {
      inferred = static_cast<int64_t>(i);
    } else if (shape[i] < 0) {
      fail("Reshape: shape entry {} ({}) must be >= 0, or -1 once", i, shape[i]);
    } else {
      known *= shape[i];
    }
  }
  std::vector<int64_t> out = {batch};
  out.insert(out.end(), shape.begin(), shape.end());
  const int64_t per_item = batch == 0 ? 0 : x.numel() / batch;
  const bool fits = inferred >= 0 ? known > 0 && per_item % known == 0 : known == per_item;
  if (fits && inferred >= 0) out[static_cast<std::size_t>(inferred) + 1] = per_item / known;
  if (!fits || checked_numel(out, "Reshape") != x.numel()) {
    fail("Reshape: input shape {} has {} elements per batch item; shape {} does not fit",
         shape_to_string(x.shape), per_item, shape_to_string(shape));
  }
  return Tensor(std::move(out), x.data);
}

// --------------------------------------------------------------------- Mean
std::string Mean::describe() const { return fmt::format("Mean(axis {})", axis); }

Tensor Mean::forward(const Tensor& x) const {
  const auto [outer, size, inner, shape] = view_around_axis(x, axis, "Mean");
  if (size < 1) fail("Mean: axis {} of input shape {} is empty", axis, shape_to_string(x.shape));
  Tensor y(shape);
  std::vector<double> sum(static_cast<std::size_t>(inner));
  for (int64_t o = 0; o < outer; ++o) {
    std::fill(sum.begin(), sum.end(), 0.0);
    for (int64_t s = 0; s < size; ++s) {
      const float* row = x.data.data() + (o * size + s) * inner;
      for (int64_t i = 0; i < inner; ++i) sum[static_cast<std::size_t>(i)] += row[i];
    }
    for (int64_t i = 0; i < inner; ++i) {
      y.data[static_cast<std::size_t>(o * inner + i)] =
          static_cast<float>(sum[static_cast<std::size_t>(i)] / static_cast<double>(size));
    }
  }
  return y;
}

// --------------------------------------------------------------- Attention
Attention::Attention(int64_t h) : heads(h) {
  if (h < 1) fail("Attention: heads ({}) must be >= 1", h);
}

std::string Attention::describe() const {
  return fmt::format("Attention(heads {}{})", heads,
                     products == Products::int8 ? ", int8 products" : "");
}

Tensor Attention::forward(std::span<const Tensor* const> inputs) const {
  if (inputs.size() != 3 && inputs.size() != 4) {
    fail("Attention: inputs ({}) must be 3 (q, k, v) or 4 (q, k, v, mask)", inputs.size());
  }
  const Tensor& q = *inputs[0];
  const Tensor& k = *inputs[1];
  const Tensor& v = *inputs[2];
  if (q.rank() != 3)
    fail("Attention: q shape {} must be [batch][seq][hidden]", shape_to_string(q.shape));
  const int64_t batch = q.shape[0], seq_q = q.shape[1], hidden = q.shape[2];
  if (heads < 1 || hidden % heads != 0) {
    fail("Attention: heads ({}) must be >= 1 and divide hidden ({})", heads, hidden);
  }
  if (k.rank() != 3 || k.shape[0] != batch || k.shape[2] != hidden) {
    fail("Attention: k shape {} must be [{}][seq][{}] (q's batch and hidden)",
         shape_to_string(k.shape), batch, hidden);
  }
  if (v.shape != k.shape) {
    fail("Attention: v shape {} must equal k shape {}", shape_to_string(v.shape),
         shape_to_string(k.shape));
  }
  const int64_t seq_k = k.shape[1];
  if (seq_k < 1) fail("Attention: key sequence length ({}) must be >= 1", seq_k);
  // Hugging Face's extended attention mask: (1 - mask) * finfo(float32).min.
  std::vector<float> additive(static_cast<std::size_t>(batch * seq_k), 0.0f);
  if (inputs.size() == 4) {
    const Tensor& mask = *inputs[3];
    if (mask.shape != std::vector<int64_t>{batch, seq_k}) {
      fail("Attention: mask shape {} must be [{}][{}] (batch, key sequence)",
           shape_to_string(mask.shape), batch, seq_k);
    }
    for (std::size_t i = 0; i < additive.size(); ++i) {
      const float m = mask.data[i];
      if (m != 0.0f && m != 1.0f) {
        fail("Attention: mask value ({}) at flat index {} must be 0 (padding) or 1 (token)", m, i);
      }
      additive[i] = (1.0f - m) * std::numeric_limits<float>::lowest();
    }
  }

  const int64_t d = hidden / heads;
  const float inv_sqrt_d = 1.0f / std::sqrt(static_cast<float>(d));
  Tensor out({batch, seq_q, hidden});
  const sparq::detail::SoftmaxRowsFn softmax = kernels().softmax_rows;
  thread_local std::vector<float> scores;
  scores.resize(static_cast<std::size_t>(seq_q * seq_k));
  const bool int8 = products == Products::int8;
  for (int64_t b = 0; b < batch; ++b) {
    const float* mask_row = additive.data() + b * seq_k;
    for (int64_t h = 0; h < heads; ++h) {
      const float* qh = q.data.data() + b * seq_q * hidden + h * d;
      const float* kh = k.data.data() + b * seq_k * hidden + h * d;
      const float* vh = v.data.data() + b * seq_k * hidden + h * d;
      float* oh = out.data.data() + b * seq_q * hidden + h * d;
      if (int8) {
        int8_scores(qh, kh, seq_q, seq_k, d, hidden, scores.data());
      } else {
        fp32_scores(qh, kh, seq_q, seq_k, d, hidden, scores.data());
      }
      // Hugging Face divides by sqrt(d) before adding the mask; multiplying
      // by the float reciprocal differs by at most one rounding.
      softmax(scores.data(), static_cast<std::size_t>(seq_q), static_cast<std::size_t>(seq_k),
              inv_sqrt_d, mask_row);
      if (int8) {
        int8_weighted_values(scores.data(), vh, seq_q, seq_k, d, hidden, oh);
      } else {
        fp32_weighted_values(scores.data(), vh, seq_q, seq_k, d, hidden, oh);
      }
    }
  }
  return out;
}

}  // namespace sparq::nn
