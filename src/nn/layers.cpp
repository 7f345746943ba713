// FP32 reference layers, Sequential and BatchNorm folding.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <span>

#include "gemm/sgemm_packed.hpp"
#include "nn/nn_internal.hpp"
#include "sparq/error.hpp"
#include "sparq/gemm/sgemm.hpp"
#include "sparq/nn/sequential.hpp"
#include "sparq/threads.hpp"

namespace sparq::nn {

using sparq::detail::fail;

// ------------------------------------------------------------------ Tensor
int64_t checked_numel(std::span<const int64_t> shape, const char* what) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) fail("{}: dimension {} in {} must be >= 0", what, d, shape_to_string(shape));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) {
      fail("{}: the element count of {} overflows int64", what, shape_to_string(shape));
    }
    n *= d;
  }
  return n;
}

int64_t TensorView::numel() const { return checked_numel(shape, "TensorView"); }

std::string shape_to_string(std::span<const int64_t> shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Tensor::Tensor(std::vector<int64_t> s) : shape(std::move(s)) {
  data.assign(static_cast<std::size_t>(checked_numel(shape, "Tensor")), 0.0f);
}

Tensor::Tensor(std::vector<int64_t> s, std::vector<float> d)
    : shape(std::move(s)), data(std::move(d)) {
  const int64_t n = checked_numel(shape, "Tensor");
  if (n != static_cast<int64_t>(data.size())) {
    fail("Tensor: data has {} elements but shape {} needs {}", data.size(), shape_to_string(shape),
         n);
  }
}

int64_t Tensor::dim(int i) const {
  const int r = rank();
  if (i < -r || i >= r) fail("Tensor::dim: index {} out of range for rank {}", i, r);
  return shape[static_cast<std::size_t>(i < 0 ? i + r : i)];
}

const char* activation_name(Activation a) noexcept {
  switch (a) {
    case Activation::relu:
      return "relu";
    case Activation::relu6:
      return "relu6";
    default:
      return "none";
  }
}

// ------------------------------------------------------------------ Linear
namespace {

// Up to this many rows, Linear multiplies the [out][in] weights as they are
// instead of packing them for sgemm: packing reads and writes every weight
// once, several times the cost of the product itself at batch 1-4
// (measured, 1024 x 1024 at batch 1: 2.0 ms packed + sgemm against 0.11 ms
// for Eigen's unpacked product).
constexpr int64_t kDirectRows = 4;

// y[i][j] = bias[j] + dot(x[i], w[j]), one weight row at a time (read once,
// from L1 for every input row). Eight partial sums per dot product let the
// compiler vectorize without reassociating a single sum.
void linear_direct(const float* x, int64_t m, int64_t k, const float* w, int64_t n,
                   const float* bias, float* y) {
  for (int64_t j = 0; j < n; ++j) {
    const float* wj = w + j * k;
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x + i * k;
      float part[8] = {};
      int64_t kk = 0;
      for (; kk + 8 <= k; kk += 8) {
        for (int l = 0; l < 8; ++l) part[l] += xi[kk + l] * wj[kk + l];
      }
      float acc =
          ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
      for (; kk < k; ++kk) acc += xi[kk] * wj[kk];
      y[i * n + j] = (bias != nullptr ? bias[j] : 0.0f) + acc;
    }
  }
}

}  // namespace

Linear::Linear(int64_t in, int64_t out, bool with_bias) : in_features(in), out_features(out) {
  if (in < 1 || out < 1)
    fail("Linear: in_features ({}) and out_features ({}) must be >= 1", in, out);
  weight = Tensor({out, in});
  if (with_bias) bias = Tensor({out});
}

Tensor Linear::forward(const Tensor& x) const {
  return detail::linear_forward(*this, x, nullptr, false);
}

Tensor detail::linear_forward(const Linear& l, const Tensor& x, const PackedWeightsF32* packed,
                              bool relu) {
  if (x.rank() < 1 || x.shape.back() != l.in_features) {
    fail("Linear: input shape {} must end with in_features = {}", shape_to_string(x.shape),
         l.in_features);
  }
  const int64_t m = x.numel() / l.in_features;
  std::vector<int64_t> shape = x.shape;
  shape.back() = l.out_features;
  Tensor y(shape);
  if (packed == nullptr && m <= kDirectRows) {
    linear_direct(x.data.data(), m, l.in_features, l.weight.data.data(), l.out_features,
                  l.has_bias() ? l.bias.data.data() : nullptr, y.data.data());
    if (relu) apply_activation(y.data.data(), y.numel(), Activation::relu);
    return y;
  }
  // sparq's FP32 GEMM (per-ISA kernels, sparq::set_num_threads), bias and
  // ReLU fused into the store; with weights packed beforehand for every row
  // count (nn::freeze drops the unpacked weights). Without `packed` the
  // weights are packed on every call (the struct's weight is a public Tensor a caller may change
  // between calls; nn::freeze packs once), into a per-thread buffer kept
  // across calls.
  thread_local std::shared_ptr<sparq::detail::PackedWeightsF32Data> scratch;
  PackedWeightsF32 per_call;
  if (packed == nullptr) {
    per_call = sparq::detail::pack_weights_f32_scratch(
        scratch, l.weight.data.data(), l.out_features, l.in_features, WeightLayout::out_in);
    packed = &per_call;
  }
  sgemm(x.data.data(), m, l.in_features, l.in_features, *packed, l.bias.data, relu, y.data.data(),
        l.out_features);
  return y;
}

// ------------------------------------------------------------------ Conv2d
void Conv2dGeometry::validate() const {
  if (in_channels < 1 || out_channels < 1 || kernel_h < 1 || kernel_w < 1 || stride_h < 1 ||
      stride_w < 1 || dilation_h < 1 || dilation_w < 1 || pad_h < 0 || pad_w < 0 || groups < 1) {
    fail(
        "Conv2d: in {}, out {}, kernel {}x{}, stride {}x{}, dilation {}x{}, groups {} must all "
        "be >= 1 and padding {}x{} >= 0",
        in_channels, out_channels, kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w,
        groups, pad_h, pad_w);
  }
  if (in_channels % groups != 0 || out_channels % groups != 0) {
    fail("Conv2d: groups ({}) must divide in_channels ({}) and out_channels ({})", groups,
         in_channels, out_channels);
  }
  // Keeps every index product below int64 overflow for any input that fits in memory.
  constexpr int64_t limit = int64_t{1} << 24;
  if (in_channels > limit || out_channels > limit || kernel_h > limit || kernel_w > limit ||
      stride_h > limit || stride_w > limit || pad_h > limit || pad_w > limit ||
      dilation_h > limit || dilation_w > limit) {
    fail("Conv2d: every size must be <= 2^24 (got kernel {}x{}, channels {} -> {})", kernel_h,
         kernel_w, in_channels, out_channels);
  }
}

static int64_t conv_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, const char* axis) {
  const int64_t span = d * (k - 1) + 1;
  if (in + 2 * p < span) {
    fail("Conv2d/MaxPool2d: input {} {} with padding {} is smaller than the kernel's extent {}",
         axis, in, p, span);
  }
  return (in + 2 * p - span) / s + 1;
}

int64_t Conv2dGeometry::out_h(int64_t h) const {
  return conv_out(h, kernel_h, stride_h, pad_h, dilation_h, "height");
}
int64_t Conv2dGeometry::out_w(int64_t w) const {
  return conv_out(w, kernel_w, stride_w, pad_w, dilation_w, "width");
}

Conv2d::Conv2d(int64_t in, int64_t out, int64_t k, const Conv2dOptions& o)
    : Conv2d(in, out, std::array<int64_t, 2>{k, k}, o) {}

Conv2d::Conv2d(int64_t in, int64_t out, std::array<int64_t, 2> k, const Conv2dOptions& o) {
  in_channels = in;
  out_channels = out;
  kernel_h = k[0];
  kernel_w = k[1];
  stride_h = o.stride[0];
  stride_w = o.stride[1];
  pad_h = o.padding[0];
  pad_w = o.padding[1];
  dilation_h = o.dilation[0];
  dilation_w = o.dilation[1];
  groups = o.groups;
  validate();
  weight = Tensor({out, kernel_h, kernel_w, in / groups});
  if (o.bias) bias = Tensor({out});
}

namespace {

/// Depthwise convolution with one output per channel, channels innermost:
/// each tap adds a contiguous run of channels times the tap's weights
/// (transposed to [tap][channel]), which the compiler vectorises; as a GEMM
/// per group it would multiply 1-column matrices (measured on MobileNetV2:
/// most of the FP32 forward). Per output: bias, then the taps in (ky, kx)
/// order, as the GEMM path sums them. Rows run on sparq::num_threads().
void depthwise_f32(const Conv2d& c, const Tensor& x, int64_t oh, int64_t ow, Tensor& y) {
  const int64_t b = x.shape[0], h = x.shape[1], w = x.shape[2], ch = c.in_channels;
  const int64_t taps = c.kernel_h * c.kernel_w;
  std::vector<float> wt(static_cast<std::size_t>(taps * ch));
  for (int64_t i = 0; i < ch; ++i)
    for (int64_t t = 0; t < taps; ++t) wt[t * ch + i] = c.weight.data[i * taps + t];
  const int64_t rows = b * oh;
  auto row = [&](int64_t r) {
    const int64_t n = r / oh, oy = r % oh;
    for (int64_t ox = 0; ox < ow; ++ox) {
      float* acc = y.data.data() + ((r * ow) + ox) * ch;
      if (c.has_bias()) {
        std::copy_n(c.bias.data.data(), ch, acc);
      } else {
        std::fill_n(acc, ch, 0.0f);
      }
      for (int64_t ky = 0; ky < c.kernel_h; ++ky) {
        const int64_t iy = oy * c.stride_h - c.pad_h + ky * c.dilation_h;
        if (iy < 0 || iy >= h) continue;  // zero padding
        for (int64_t kx = 0; kx < c.kernel_w; ++kx) {
          const int64_t ix = ox * c.stride_w - c.pad_w + kx * c.dilation_w;
          if (ix < 0 || ix >= w) continue;
          const float* xp = x.data.data() + ((n * h + iy) * w + ix) * ch;
          const float* wp = wt.data() + (ky * c.kernel_w + kx) * ch;
          for (int64_t i = 0; i < ch; ++i) acc[i] += xp[i] * wp[i];
        }
      }
    }
  };
  detail::for_each_block(rows, detail::parallel_threads(rows), row);
}

}  // namespace

Tensor Conv2d::forward(const Tensor& x) const {
  return detail::conv2d_forward(*this, x, {}, false);
}

std::vector<PackedWeightsF32> detail::pack_conv2d_weights(
    const Conv2d& c, std::vector<std::shared_ptr<sparq::detail::PackedWeightsF32Data>>* scratch) {
  const int64_t og = c.out_channels / c.groups, patch = c.patch_size();
  std::vector<PackedWeightsF32> packed(static_cast<std::size_t>(c.groups));
  if (scratch != nullptr && scratch->size() < static_cast<std::size_t>(c.groups)) {
    scratch->resize(static_cast<std::size_t>(c.groups));
  }
  for (int64_t g = 0; g < c.groups; ++g) {
    const float* w = c.weight.data.data() + g * og * patch;
    packed[static_cast<std::size_t>(g)] =
        scratch != nullptr
            ? sparq::detail::pack_weights_f32_scratch((*scratch)[static_cast<std::size_t>(g)], w,
                                                      og, patch, WeightLayout::out_in)
            : pack_weights_f32(w, og, patch, WeightLayout::out_in);
  }
  return packed;
}

Tensor detail::conv2d_forward(const Conv2d& c, const Tensor& x,
                              std::span<const PackedWeightsF32> packed, bool relu) {
  detail::check_nhwc(x.shape, c.in_channels, "Conv2d");
  const int64_t b = x.shape[0], h = x.shape[1], w = x.shape[2];
  const int64_t oh = c.out_h(h), ow = c.out_w(w);
  const int64_t cg = c.in_channels / c.groups, og = c.out_channels / c.groups;
  const int64_t patch = c.patch_size();
  const int64_t m = b * oh * ow;
  Tensor y({b, oh, ow, c.out_channels});
  if (m == 0) return y;
  if (c.depthwise() && c.out_channels == c.in_channels) {
    depthwise_f32(c, x, oh, ow, y);
    if (relu) apply_activation(y.data.data(), y.numel(), Activation::relu);
    return y;
  }
  // Each group's weights packed once per call (og x patch, out_in) unless
  // given; its slice of the bias is fused into the GEMM's store. Per-thread
  // buffers kept across calls (no allocation per call).
  thread_local std::vector<std::shared_ptr<sparq::detail::PackedWeightsF32Data>> scratch;
  std::vector<PackedWeightsF32> per_call;
  if (packed.empty()) {
    per_call = pack_conv2d_weights(c, &scratch);
    packed = per_call;
  }
  if (static_cast<int64_t>(packed.size()) != c.groups) {
    fail("Conv2d: {} packed weight groups given; the layer has {} groups", packed.size(), c.groups);
  }
  // A 1x1 convolution with stride 1 and no padding multiplies the input as it
  // is: its patch matrix would be a copy of x. One sgemm over every row (it
  // threads itself; a tile is summed the same way whatever the split, so
  // the output is the one the blocked path below gives).
  if (c.kernel_h == 1 && c.kernel_w == 1 && c.stride_h == 1 && c.stride_w == 1 && c.pad_h == 0 &&
      c.pad_w == 0 && c.groups == 1) {
    sgemm(x.data.data(), m, patch, c.in_channels, packed[0], c.bias.data, relu, y.data.data(),
          c.out_channels);
    return y;
  }
  // The patch matrix is built and multiplied a block of rows at a time, in a
  // buffer kept across calls: a batch's whole patch matrix (7 MB for the
  // second conv of the benchmark CNN at batch 64) no longer streams
  // through memory twice, and the bias is added while the rows are in cache.
  thread_local std::vector<float> cols;
  const int threads = detail::parallel_threads(m);
  int64_t block = detail::im2col_block_rows((patch + c.out_channels) * 4, m);
  if (threads > 1) block = std::min(block, (m + threads - 1) / threads);
  // Blocks on separate threads (each a one-thread sgemm: see for_each_block),
  // so im2col runs in parallel too; smaller blocks give every thread one.
  auto run_block = [&](int64_t index) {
    const int64_t r0 = index * block;
    const int64_t rows = std::min(m - r0, block);
    if (cols.size() < static_cast<std::size_t>(block * patch)) {  // per thread (thread_local)
      cols.resize(static_cast<std::size_t>(block * patch));
    }
    float* yb = y.data.data() + r0 * c.out_channels;
    for (int64_t g = 0; g < c.groups; ++g) {
      detail::im2col(x.data.data(), h, w, c.in_channels, c, g * cg, cg, oh, ow, 0.0f, r0, r0 + rows,
                     cols.data());
      const std::span<const float> group_bias =
          c.has_bias()
              ? std::span<const float>(c.bias.data)
                    .subspan(static_cast<std::size_t>(g * og), static_cast<std::size_t>(og))
              : std::span<const float>{};
      sgemm(cols.data(), rows, patch, patch, packed[static_cast<std::size_t>(g)], group_bias, relu,
            yb + g * og, c.out_channels);
    }
  };
  detail::for_each_block((m + block - 1) / block, threads, run_block);
  return y;
}

// --------------------------------------------------------------- BatchNorm
BatchNorm::BatchNorm(int64_t n, float e) : num_features(n), eps(e) {
  if (n < 1) fail("BatchNorm: num_features ({}) must be >= 1", n);
  if (!(e > 0.0f) || !std::isfinite(e)) fail("BatchNorm: eps ({}) must be finite and > 0", e);
  weight = Tensor({n}, std::vector<float>(static_cast<std::size_t>(n), 1.0f));
  bias = Tensor({n});
  running_mean = Tensor({n});
  running_var = Tensor({n}, std::vector<float>(static_cast<std::size_t>(n), 1.0f));
}

namespace {

// The element-wise layers on a tensor the caller owns, so that
// Sequential::forward runs them in place instead of copying every
// activation. Each has the checks and arithmetic of its forward().
void batchnorm_in_place(const BatchNorm& bn, Tensor& y) {
  const int64_t n = bn.num_features;
  if (y.rank() < 1 || y.shape.back() != n) {
    fail("BatchNorm: input shape {} must end with num_features = {}", shape_to_string(y.shape), n);
  }
  // Same arithmetic as the folded form's reference: float ops in this order.
  std::vector<float> scale(static_cast<std::size_t>(n));
  for (int64_t c = 0; c < n; ++c) {
    scale[c] = bn.weight.data[c] / std::sqrt(bn.running_var.data[c] + bn.eps);
  }
  const float* mean = bn.running_mean.data.data();
  const float* bias = bn.bias.data.data();
  // Row by row over the channel axis (no per-element modulo): vectorizes.
  for (float* row = y.data.data(); row != y.data.data() + y.numel(); row += n) {
    for (int64_t c = 0; c < n; ++c) row[c] = (row[c] - mean[c]) * scale[c] + bias[c];
  }
}

void flatten_in_place(Tensor& y) {
  if (y.rank() < 1) fail("Flatten: input must have a batch axis (got rank 0)");
  const int64_t b = y.shape[0];
  y.shape = {b, b == 0 ? 0 : y.numel() / b};
}

}  // namespace

bool detail::forward_in_place(const Layer& layer, Tensor& y) {
  if (const auto* bn = std::get_if<BatchNorm>(&layer)) {
    batchnorm_in_place(*bn, y);
  } else if (std::holds_alternative<ReLU>(layer)) {
    detail::apply_activation(y.data.data(), y.numel(), Activation::relu);
  } else if (std::holds_alternative<ReLU6>(layer)) {
    detail::apply_activation(y.data.data(), y.numel(), Activation::relu6);
  } else if (std::holds_alternative<Flatten>(layer)) {
    flatten_in_place(y);
  } else {
    return false;
  }
  return true;
}

Tensor BatchNorm::forward(const Tensor& x) const {
  Tensor y = x;
  batchnorm_in_place(*this, y);
  return y;
}

Tensor ReLU::forward(const Tensor& x) const {
  Tensor y = x;
  detail::apply_activation(y.data.data(), y.numel(), Activation::relu);
  return y;
}
Tensor ReLU6::forward(const Tensor& x) const {
  Tensor y = x;
  detail::apply_activation(y.data.data(), y.numel(), Activation::relu6);
  return y;
}

// --------------------------------------------------------------- MaxPool2d
MaxPool2d::MaxPool2d(int64_t k, int64_t s, int64_t p)
    : kernel_h(k),
      kernel_w(k),
      stride_h(s == 0 ? k : s),
      stride_w(s == 0 ? k : s),
      pad_h(p),
      pad_w(p) {
  validate();
}

void detail::check_pool_window(const char* who, int64_t kernel_h, int64_t kernel_w,
                               int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w) {
  constexpr int64_t limit = int64_t{1} << 24;
  if (kernel_h < 1 || kernel_w < 1 || stride_h < 1 || stride_w < 1 || pad_h < 0 || pad_w < 0 ||
      kernel_h > limit || kernel_w > limit || stride_h > limit || stride_w > limit) {
    fail("{}: kernel {}x{} and stride {}x{} must be in [1, 2^24], padding {}x{} >= 0", who,
         kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w);
  }
  // PyTorch's rule: padding at most half the kernel, so no window is all
  // padding (AvgPool2d would divide by zero without count_include_pad).
  if (2 * pad_h > kernel_h || 2 * pad_w > kernel_w) {
    fail("{}: padding {}x{} must be at most half the kernel {}x{}", who, pad_h, pad_w, kernel_h,
         kernel_w);
  }
}

void MaxPool2d::validate() const {
  detail::check_pool_window("MaxPool2d", kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w);
}

int64_t MaxPool2d::out_h(int64_t h) const {
  return conv_out(h, kernel_h, stride_h, pad_h, 1, "height");
}
int64_t MaxPool2d::out_w(int64_t w) const {
  return conv_out(w, kernel_w, stride_w, pad_w, 1, "width");
}

Tensor MaxPool2d::forward(const Tensor& x) const {
  detail::check_nhwc(x.shape, 0, "MaxPool2d");
  validate();
  const int64_t oh = out_h(x.shape[1]), ow = out_w(x.shape[2]);
  Tensor y({x.shape[0], oh, ow, x.shape[3]});
  detail::max_pool(x.data.data(), x.shape[0], x.shape[1], x.shape[2], x.shape[3], *this, oh, ow,
                   y.data.data());
  return y;
}

Tensor Flatten::forward(const Tensor& x) const {
  Tensor y = x;
  flatten_in_place(y);
  return y;
}

// ------------------------------------------------------------------ Layer
const char* layer_kind(const Layer& layer) noexcept {
  static constexpr const char* names[] = {"Linear", "Conv2d",    "BatchNorm", "ReLU",
                                          "ReLU6",  "MaxPool2d", "Flatten"};
  return names[layer.index()];
}

std::string describe(const Layer& layer) {
  return std::visit(
      [](const auto& l) -> std::string {
        using L = std::decay_t<decltype(l)>;
        if constexpr (std::is_same_v<L, Linear>) {
          return fmt::format("Linear({} -> {}{})", l.in_features, l.out_features,
                             l.has_bias() ? "" : ", no bias");
        } else if constexpr (std::is_same_v<L, Conv2d>) {
          return fmt::format("Conv2d({} -> {}, k{}x{}, s{}x{}, p{}x{}, d{}x{}, g{})", l.in_channels,
                             l.out_channels, l.kernel_h, l.kernel_w, l.stride_h, l.stride_w,
                             l.pad_h, l.pad_w, l.dilation_h, l.dilation_w, l.groups);
        } else if constexpr (std::is_same_v<L, BatchNorm>) {
          return fmt::format("BatchNorm({})", l.num_features);
        } else if constexpr (std::is_same_v<L, MaxPool2d>) {
          return fmt::format("MaxPool2d(k{}x{}, s{}x{}, p{}x{})", l.kernel_h, l.kernel_w,
                             l.stride_h, l.stride_w, l.pad_h, l.pad_w);
        } else if constexpr (std::is_same_v<L, ReLU>) {
          return "ReLU";
        } else if constexpr (std::is_same_v<L, ReLU6>) {
          return "ReLU6";
        } else {
          return "Flatten";
        }
      },
      layer);
}

Tensor forward(const Layer& layer, const Tensor& x) {
  return std::visit([&](const auto& l) { return l.forward(x); }, layer);
}

Tensor oihw_to_ohwi(const Tensor& w) {
  if (w.rank() != 4)
    fail("oihw_to_ohwi: weight shape {} must have rank 4", shape_to_string(w.shape));
  const int64_t o = w.shape[0], i = w.shape[1], h = w.shape[2], k = w.shape[3];
  Tensor out({o, h, k, i});
  for (int64_t a = 0; a < o; ++a)
    for (int64_t b = 0; b < i; ++b)
      for (int64_t c = 0; c < h; ++c)
        for (int64_t d = 0; d < k; ++d)
          out.data[((a * h + c) * k + d) * i + b] = w.data[((a * i + b) * h + c) * k + d];
  return out;
}

// -------------------------------------------------------------- Sequential
Sequential::Sequential(std::initializer_list<Layer> layers) {
  for (const Layer& l : layers) add(l);
}

Sequential& Sequential::add(Layer layer) {
  layers_.push_back(std::move(layer));
  return *this;
}

Tensor Sequential::forward(const Tensor& x) const {
  if (layers_.empty()) return x;
  Tensor y;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    try {
      // The first layer reads x itself (no copy of the input); element-wise
      // layers after it update the activation in place.
      if (i == 0) {
        y = nn::forward(layers_[i], x);
      } else if (!detail::forward_in_place(layers_[i], y)) {
        y = nn::forward(layers_[i], y);
      }
    } catch (const Error& e) {
      fail("Sequential layer {} ({}): {}", i, describe(layers_[i]), e.what());
    }
  }
  return y;
}

void detail::for_each_layer_param(Layer& layer, const std::string& prefix, const ParamVisitor& f) {
  std::visit(
      [&](auto& l) {
        using L = std::decay_t<decltype(l)>;
        if constexpr (std::is_same_v<L, Linear> || std::is_same_v<L, Conv2d>) {
          f(prefix + "weight", l.weight);
          if (l.has_bias()) f(prefix + "bias", l.bias);
        } else if constexpr (std::is_same_v<L, BatchNorm>) {
          f(prefix + "weight", l.weight);
          f(prefix + "bias", l.bias);
          f(prefix + "running_mean", l.running_mean);
          f(prefix + "running_var", l.running_var);
        }
      },
      layer);
}

namespace {

// The Sequential's parameters are only read through a const model; the
// visitor gets Tensor& because it serves loading too.
template <class F>
void for_each_param(const Layer& layer, const std::string& prefix, F&& f) {
  detail::for_each_layer_param(const_cast<Layer&>(layer), prefix, f);
}

}  // namespace

TensorMap Sequential::state_dict() const {
  TensorMap out;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    for_each_param(layers_[i], std::to_string(i) + ".",
                   [&](const std::string& name, const Tensor& t) { out[name] = t; });
  }
  return out;
}

void Sequential::load_state_dict(const TensorMap& tensors, bool strict) {
  // Validate everything before changing anything, so a failed load leaves the model intact.
  for (int pass = 0; pass < 2; ++pass) {
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      for_each_param(layers_[i], std::to_string(i) + ".", [&](const std::string& name, Tensor& t) {
        auto it = tensors.find(name);
        if (it == tensors.end()) {
          if (strict)
            fail("load_state_dict: missing parameter '{}' (shape {})", name,
                 shape_to_string(t.shape));
          return;
        }
        if (it->second.shape != t.shape || it->second.numel() != t.numel()) {
          fail("load_state_dict: parameter '{}' has shape {} but the model expects {}", name,
               shape_to_string(it->second.shape), shape_to_string(t.shape));
        }
        if (pass == 1) {
          t = it->second;
        }
      });
    }
  }
  if (strict) {
    for (const auto& entry : tensors) {  // no structured binding: clang 14 cannot capture it
      const std::string& name = entry.first;
      const Tensor& t = entry.second;
      // PyTorch's BatchNorm counter: meaningless at inference.
      if (name.ends_with(".num_batches_tracked")) continue;
      bool known = false;
      for (std::size_t i = 0; i < layers_.size() && !known; ++i) {
        for_each_param(layers_[i], std::to_string(i) + ".",
                       [&](const std::string& n, Tensor&) { known = known || n == name; });
      }
      if (!known)
        fail("load_state_dict: unexpected parameter '{}' (shape {})", name,
             shape_to_string(t.shape));
    }
  }
}

void detail::init_layer_parameters(Layer& layer, std::mt19937_64& rng) {
  std::visit(
      [&](auto& l) {
        using L = std::decay_t<decltype(l)>;
        if constexpr (std::is_same_v<L, Linear> || std::is_same_v<L, Conv2d>) {
          const int64_t fan_in = l.weight.numel() / l.weight.shape[0];
          const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
          std::uniform_real_distribution<float> u(-bound, bound);
          for (float& v : l.weight.data) v = u(rng);
          for (float& v : l.bias.data) v = u(rng);
        } else if constexpr (std::is_same_v<L, BatchNorm>) {
          l = BatchNorm(l.num_features, l.eps);
        }
      },
      layer);
}

void Sequential::init_parameters(uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (Layer& layer : layers_) detail::init_layer_parameters(layer, rng);
}

std::size_t Sequential::weight_bytes() const {
  std::size_t bytes = 0;
  for (const auto& [name, t] : state_dict()) bytes += t.data.size() * sizeof(float);
  return bytes;
}

std::string Sequential::summary() const {
  std::string s;
  for (std::size_t i = 0; i < layers_.size(); ++i)
    s += fmt::format("{:<4} {}\n", i, describe(layers_[i]));
  return s;
}

// ------------------------------------------------------- BatchNorm folding
bool detail::fold_batchnorm_into(Layer& prev, const BatchNorm& bn, const std::string& where) {
  Tensor* w = nullptr;
  Tensor* b = nullptr;
  int64_t channels = 0;
  if (auto* lin = std::get_if<Linear>(&prev)) {
    w = &lin->weight, b = &lin->bias, channels = lin->out_features;
  } else if (auto* conv = std::get_if<Conv2d>(&prev)) {
    w = &conv->weight, b = &conv->bias, channels = conv->out_channels;
  }
  if (w == nullptr) return false;
  if (channels != bn.num_features) {
    fail("fold_batchnorm: BatchNorm {} has {} features but the layer before it has {} outputs",
         where, bn.num_features, channels);
  }
  const int64_t per = w->numel() / channels;
  std::vector<float> new_bias(static_cast<std::size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) {
    const double g =
        static_cast<double>(bn.weight.data[c]) /
        std::sqrt(static_cast<double>(bn.running_var.data[c]) + static_cast<double>(bn.eps));
    for (int64_t j = 0; j < per; ++j) {
      float& v = w->data[c * per + j];
      v = static_cast<float>(static_cast<double>(v) * g);
    }
    const double old_b = b->empty() ? 0.0 : static_cast<double>(b->data[c]);
    new_bias[c] = static_cast<float>((old_b - static_cast<double>(bn.running_mean.data[c])) * g +
                                     static_cast<double>(bn.bias.data[c]));
  }
  *b = Tensor({channels}, std::move(new_bias));
  return true;
}

int fold_batchnorm(Sequential& model) {
  Sequential out;
  int folded = 0;
  for (std::size_t i = 0; i < model.size(); ++i) {
    const Layer& layer = model[i];
    if (const auto* bn = std::get_if<BatchNorm>(&layer); bn && !out.empty()) {
      if (detail::fold_batchnorm_into(out[out.size() - 1], *bn, "at " + std::to_string(i))) {
        ++folded;
        continue;
      }
    }
    out.add(layer);
  }
  model = std::move(out);
  return folded;
}

}  // namespace sparq::nn
