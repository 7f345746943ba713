// Internal helpers shared by the nn sources (not installed).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#if defined(SPARQ_WITH_OPENMP)
#include <omp.h>
#endif

#include "sparq/error.hpp"
#include "sparq/gemm/sgemm.hpp"
#include "sparq/nn/graph.hpp"
#include "sparq/nn/graph_op.hpp"
#include "sparq/nn/graph_quantized.hpp"
#include "sparq/nn/layers.hpp"
#include "sparq/nn/quantized.hpp"
#include "sparq/nn/workflow.hpp"
#include "sparq/observe/observer.hpp"
#include "sparq/quant/requantize.hpp"

namespace sparq::nn::detail {

/// Calls f(prefix + name, tensor) for every parameter of a layer, in
/// state_dict order ("weight", "bias", "running_mean", "running_var").
void for_each_layer_param(Layer& layer, const std::string& prefix, const ParamVisitor& f);
/// PyTorch's default initialisation of one layer (see Sequential::init_parameters).
void init_layer_parameters(Layer& layer, std::mt19937_64& rng);
/// Folds `bn` into `prev` when it is a Linear or Conv2d (returns false and
/// changes nothing otherwise); `where` names the BatchNorm in errors.
bool fold_batchnorm_into(Layer& prev, const BatchNorm& bn, const std::string& where);

/// Linear::forward with the weights already packed (`packed`; null: packed
/// on this call) and a ReLU fused into the GEMM's store. nn::freeze runs
/// its Linear nodes through it; the output is the same as forward() then a
/// ReLU.
Tensor linear_forward(const Linear& layer, const Tensor& x, const PackedWeightsF32* packed,
                      bool relu);
/// Conv2d::forward likewise: `packed` holds one entry per group
/// (pack_conv2d_weights), or none to pack on this call.
Tensor conv2d_forward(const Conv2d& layer, const Tensor& x,
                      std::span<const PackedWeightsF32> packed, bool relu);
/// A convolution's weights packed for sgemm, one per group; into the
/// per-thread buffers of `scratch` when given (Conv2d::forward), else new.
std::vector<PackedWeightsF32> pack_conv2d_weights(
    const Conv2d& layer,
    std::vector<std::shared_ptr<sparq::detail::PackedWeightsF32Data>>* scratch = nullptr);
/// Runs `layer` on y in place when it is element-wise (BatchNorm, ReLU,
/// ReLU6, Flatten), with the checks of its forward(); false otherwise.
bool forward_in_place(const Layer& layer, Tensor& y);

/// The window rules MaxPool2d and AvgPool2d share (PyTorch's): kernel and
/// stride in [1, 2^24], padding >= 0 and at most half the kernel, so no
/// window is all padding. sparq::Error names `who` and the values.
void check_pool_window(const char* who, int64_t kernel_h, int64_t kernel_w, int64_t stride_h,
                       int64_t stride_w, int64_t pad_h, int64_t pad_w);

/// Checks a rank-4 NHWC input against a layer's channel count.
inline void check_nhwc(const std::vector<int64_t>& shape, int64_t channels, const char* who) {
  if (shape.size() != 4 || (channels > 0 && shape[3] != channels)) {
    sparq::detail::fail("{}: input shape {} must be NHWC [batch][height][width][{}]", who,
                        shape_to_string(shape), channels > 0 ? std::to_string(channels) : "C");
  }
}

/// Copies n elements that do not overlap. The runs im2col copies are short
/// (kernel_w x channels: 3 bytes for a 3x3 conv on a grey image, 48 for 16
/// channels), where a libc memcpy call per run cost more than the copy
/// itself: up to 64 bytes move as fixed-size (inlined) blocks, the last one
/// overlapping the previous, with no call.
template <class T>
inline void copy_run(T* dst, const T* src, int64_t n) {
  auto* d = reinterpret_cast<unsigned char*>(dst);
  const auto* s = reinterpret_cast<const unsigned char*>(src);
  const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(T);
  if (bytes > 64) {
    std::memcpy(d, s, bytes);
  } else if (bytes >= 16) {
    for (std::size_t i = 0; i + 16 < bytes; i += 16) std::memcpy(d + i, s + i, 16);
    std::memcpy(d + bytes - 16, s + bytes - 16, 16);
  } else if (bytes >= 8) {
    std::memcpy(d, s, 8);
    std::memcpy(d + bytes - 8, s + bytes - 8, 8);
  } else if (bytes >= 4) {
    std::memcpy(d, s, 4);
    std::memcpy(d + bytes - 4, s + bytes - 4, 4);
  } else if (bytes >= 2) {
    std::memcpy(d, s, 2);
    std::memcpy(d + bytes - 2, s + bytes - 2, 2);
  } else if (bytes == 1) {
    *d = *s;
  }
}

/// Rows per im2col block of a convolution whose rows take `row_bytes`
/// (patch columns plus output channels): the block, the GEMM's packed copy
/// of it and its outputs stay in L2 instead of streaming a whole batch's
/// patch matrix (7 MB of floats for the second conv of the benchmark CNN
/// at batch 64) through memory. A multiple of 96 rows, so that no
/// microkernel row tile (MR = 4, 6, 8, 12, 16, ...) is split at a block
/// edge, unless one block holds every row.
inline int64_t im2col_block_rows(int64_t row_bytes, int64_t m) {
  constexpr int64_t bytes = int64_t{192} << 10;
  const int64_t rows = std::max<int64_t>(96, bytes / row_bytes);
  return std::min(m, rows / 96 * 96);
}

/// count copies of one n-element run: run i goes from src + i * sstep to
/// dst + i * dstep. The common run sizes are compile-time constants, so each
/// copy is a few inlined moves, with no call and no size dispatch per run.
template <std::size_t Bytes>
void copy_runs_fixed(unsigned char* d, int64_t dstep, const unsigned char* s, int64_t sstep,
                     int64_t count) {
  for (int64_t i = 0; i < count; ++i) std::memcpy(d + i * dstep, s + i * sstep, Bytes);
}

template <class T>
void copy_runs(T* dst, int64_t dstep, const T* src, int64_t sstep, int64_t count, int64_t n) {
  auto* d = reinterpret_cast<unsigned char*>(dst);
  const auto* s = reinterpret_cast<const unsigned char*>(src);
  constexpr auto size = static_cast<int64_t>(sizeof(T));
  const int64_t db = dstep * size, sb = sstep * size;
  switch (n * size) {
#define SPARQ_NN_RUN(bytes) \
  case bytes:               \
    return copy_runs_fixed<bytes>(d, db, s, sb, count);
    SPARQ_NN_RUN(1)
    SPARQ_NN_RUN(2)
    SPARQ_NN_RUN(3)
    SPARQ_NN_RUN(4)
    SPARQ_NN_RUN(6)
    SPARQ_NN_RUN(8)
    SPARQ_NN_RUN(9)
    SPARQ_NN_RUN(12)
    SPARQ_NN_RUN(16)
    SPARQ_NN_RUN(24)
    SPARQ_NN_RUN(32)
    SPARQ_NN_RUN(36)
    SPARQ_NN_RUN(48)
    SPARQ_NN_RUN(64)
    SPARQ_NN_RUN(96)
    SPARQ_NN_RUN(128)
    SPARQ_NN_RUN(192)
    SPARQ_NN_RUN(256)
#undef SPARQ_NN_RUN
    default:
      for (int64_t i = 0; i < count; ++i) copy_run(dst + i * dstep, src + i * sstep, n);
  }
}

/// im2col for one group of an NHWC convolution, rows [r0, r1) of the patch
/// matrix: row r = (b, oy, ox) of the output goes to out + (r - r0) * patch
/// (patch = kernel_h * kernel_w * cg) and holds the (kh, kw, c) patch of
/// channels [c0, c0 + cg); positions in the padding get `pad` (the quantized
/// zero for u8).
///
/// Works one output row (b, oy) and one kernel row ky at a time: the output
/// columns whose taps all lie inside the image copy one run each (kernel_w x
/// channels, contiguous when the group spans every channel and the columns
/// are not dilated) with the size dispatched once per kernel row; only the
/// columns at the image edges check each tap.
template <class T>
void im2col(const T* x, int64_t h, int64_t w, int64_t c, const Conv2dGeometry& g, int64_t c0,
            int64_t cg, int64_t oh, int64_t ow, T pad, int64_t r0, int64_t r1, T* out) {
  const int64_t kw = g.kernel_w, sw = g.stride_w, dw = g.dilation_w;
  const int64_t patch = g.kernel_h * kw * cg;
  const bool runs = cg == c && dw == 1;
  // Output columns [in_lo, in_hi) have every tap inside the image width.
  const int64_t span = dw * (kw - 1) + 1;
  const int64_t in_lo = std::min(ow, (g.pad_w + sw - 1) / sw);
  const int64_t in_hi =
      std::max(in_lo, std::min(ow, w + g.pad_w - span >= 0 ? (w + g.pad_w - span) / sw + 1 : 0));
  // One edge column of one kernel row: each tap checked.
  auto edge = [&](T* dst, const T* src_row, int64_t ox) {
    const int64_t ix0 = ox * sw - g.pad_w;
    for (int64_t kx = 0; kx < kw; ++kx) {
      const int64_t ix = ix0 + kx * dw;
      if (ix < 0 || ix >= w) {
        std::fill(dst + kx * cg, dst + (kx + 1) * cg, pad);
      } else {
        copy_run(dst + kx * cg, src_row + ix * c, cg);
      }
    }
  };
  for (int64_t r = r0; r < r1;) {
    const int64_t ox_a = r % ow, oy = (r / ow) % oh, b = r / (ow * oh);
    const int64_t ox_b = std::min(ow, ox_a + (r1 - r));  // this output row's columns in range
    T* row_a = out + (r - r0) * patch;                   // column ox_a
    for (int64_t ky = 0; ky < g.kernel_h; ++ky) {
      const int64_t iy = oy * g.stride_h - g.pad_h + ky * g.dilation_h;
      T* seg = row_a + ky * kw * cg;  // column ox is at seg + (ox - ox_a) * patch
      if (iy < 0 || iy >= h) {
        for (int64_t i = 0; i < ox_b - ox_a; ++i) {
          std::fill(seg + i * patch, seg + i * patch + kw * cg, pad);
        }
        continue;
      }
      const T* src_row = x + (b * h + iy) * w * c + c0;
      const int64_t lo = std::clamp(in_lo, ox_a, ox_b), hi = std::clamp(in_hi, lo, ox_b);
      for (int64_t ox = ox_a; ox < lo; ++ox) edge(seg + (ox - ox_a) * patch, src_row, ox);
      if (hi > lo) {
        T* dst = seg + (lo - ox_a) * patch;
        const T* src = src_row + (lo * sw - g.pad_w) * c;  // inside the row: lo >= in_lo
        if (runs) {
          copy_runs(dst, patch, src, sw * c, hi - lo, kw * c);
        } else {
          for (int64_t kx = 0; kx < kw; ++kx) {
            copy_runs(dst + kx * cg, patch, src + kx * dw * c, sw * c, hi - lo, cg);
          }
        }
      }
      for (int64_t ox = hi; ox < ox_b; ++ox) edge(seg + (ox - ox_a) * patch, src_row, ox);
    }
    r += ox_b - ox_a;
  }
}

/// max_pool for C channels, C known at compile time. Taps are visited in (ky, kx) order from the
/// identity (-inf for float, the lowest value otherwise) with std::max's rule (keep the current
/// value unless the tap is greater), so NaN handling is that of a plain loop.
/// The channel loops stay loops (`unroll 1`: fully unrolled, g++ turns the
/// 16-byte one into scalar byte compares) over non-overlapping pointers
/// (`__restrict`: no runtime overlap checks), which the vectorizer turns
/// into a few whole-vector max instructions: 3.6x faster than the generic
/// loop for 16 u8 channels, 1.5x for 16 floats (2x2 pool on 28x28).
template <class T, int64_t C>
void max_pool_c(const T* x, int64_t batch, int64_t h, int64_t w, const MaxPool2d& p, int64_t oh,
                int64_t ow, T* out) {
  constexpr int64_t c = C;
  constexpr T identity = std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                                              : std::numeric_limits<T>::lowest();
  const int64_t kh = p.kernel_h, kw = p.kernel_w, sh = p.stride_h, sw = p.stride_w;
  const int64_t ph = p.pad_h, pw = p.pad_w;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t oy = 0; oy < oh; ++oy) {
      // Taps [ky0, ky1) x [kx0, kx1) of the window lie inside the image.
      const int64_t iy = oy * sh - ph;
      const int64_t ky0 = std::max<int64_t>(0, -iy), ky1 = std::min(kh, h - iy);
      for (int64_t ox = 0; ox < ow; ++ox) {
        const int64_t ix = ox * sw - pw;
        const int64_t kx0 = std::max<int64_t>(0, -ix), kx1 = std::min(kw, w - ix);
        T* __restrict dst = out + ((b * oh + oy) * ow + ox) * c;
        std::fill(dst, dst + c, identity);
        for (int64_t ky = ky0; ky < ky1; ++ky) {
          const T* __restrict src = x + ((b * h + iy + ky) * w + ix + kx0) * c;
          for (int64_t kx = 0; kx < kx1 - kx0; ++kx) {
#pragma GCC unroll 1
            for (int64_t ch = 0; ch < c; ++ch) {
              const T d = dst[ch], v = src[kx * c + ch];
              dst[ch] = d < v ? v : d;
            }
          }
        }
      }
    }
  }
}

/// max_pool for any channel count.
template <class T>
void max_pool_any(const T* x, int64_t batch, int64_t h, int64_t w, int64_t c, const MaxPool2d& p,
                  int64_t oh, int64_t ow, T* out) {
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t oy = 0; oy < oh; ++oy) {
      for (int64_t ox = 0; ox < ow; ++ox) {
        T* dst = out + ((b * oh + oy) * ow + ox) * c;
        std::fill(dst, dst + c, std::numeric_limits<T>::lowest());
        if constexpr (std::numeric_limits<T>::has_infinity) {
          std::fill(dst, dst + c, -std::numeric_limits<T>::infinity());
        }
        for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
          const int64_t iy = oy * p.stride_h - p.pad_h + ky;
          if (iy < 0 || iy >= h) continue;
          for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
            const int64_t ix = ox * p.stride_w - p.pad_w + kx;
            if (ix < 0 || ix >= w) continue;
            const T* src = x + ((b * h + iy) * w + ix) * c;
            for (int64_t ch = 0; ch < c; ++ch) dst[ch] = std::max(dst[ch], src[ch]);
          }
        }
      }
    }
  }
}

/// NHWC max pooling; positions in the padding are skipped.
template <class T>
void max_pool(const T* x, int64_t batch, int64_t h, int64_t w, int64_t c, const MaxPool2d& p,
              int64_t oh, int64_t ow, T* out) {
  switch (c) {
    case 8:
      return max_pool_c<T, 8>(x, batch, h, w, p, oh, ow, out);
    case 16:
      return max_pool_c<T, 16>(x, batch, h, w, p, oh, ow, out);
    case 32:
      return max_pool_c<T, 32>(x, batch, h, w, p, oh, ow, out);
    case 64:
      return max_pool_c<T, 64>(x, batch, h, w, p, oh, ow, out);
    default:
      return max_pool_any(x, batch, h, w, c, p, oh, ow, out);
  }
}

/// Dense weights per group of a convolution from the whole [out][patch] int8
/// tensor and its scales (1 per tensor, shared by every group, or 1 per output).
std::vector<std::shared_ptr<const QuantizedWeights>> split_groups(const std::vector<int8_t>& values,
                                                                  const std::vector<float>& scales,
                                                                  const Conv2dGeometry& g);

inline void apply_activation(float* y, int64_t n, Activation a) {
  if (a == Activation::relu) {
    for (int64_t i = 0; i < n; ++i) y[i] = std::max(y[i], 0.0f);
  } else if (a == Activation::relu6) {
    for (int64_t i = 0; i < n; ++i) y[i] = std::min(std::max(y[i], 0.0f), 6.0f);
  }
}

/// Leaves the elements of resize() uninitialized: every buffer below is
/// written in full by the kernel that fills it, and zeroing it first cost a
/// memory pass per layer (a few % of the CNN forward).
template <class T>
struct UninitAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = UninitAllocator<U>;
  };
  UninitAllocator() = default;
  template <class U>
  UninitAllocator(const UninitAllocator<U>&) noexcept {}
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... A>
  void construct(U* p, A&&... a) {
    ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
  }
};
template <class T>
using Buffer = std::vector<T, UninitAllocator<T>>;

/// An activation between units: FP32, or u8 with its qparams. The FP32
/// values of a model's input may stay in the caller's buffer (`src`, set by
/// the serving path): units read them in place and never write them.
struct Act {
  std::vector<int64_t> shape;
  bool quantized = false;
  Buffer<float> f;
  Buffer<uint8_t> q;
  QParams qp;
  const float* src = nullptr;  ///< FP32 values held by the caller (then `f` is unused)

  /// The FP32 values (the caller's or `f`); only for !quantized.
  const float* floats() const noexcept { return src ? src : f.data(); }
  std::size_t float_count() const noexcept {
    return src ? static_cast<std::size_t>(checked_numel(shape)) : f.size();
  }
};

/// A residual input fused into a static convolution's output stage (see
/// sparq::ResidualInput): the u8 shortcut, shaped like the conv's output,
/// and one multiplier list per group, s_r / (s_in * s_w[n]).
struct ConvResidual {
  const uint8_t* data = nullptr;
  int32_t zero_point = 0;
  const std::vector<std::vector<QuantizedMultiplier>>* multipliers = nullptr;
};

// The workflow pieces of workflow.cpp that graphs share.
/// The INT8 form of a (BatchNorm-folded) Linear or Conv2d with its fused
/// activation: dynamic, or static with the given input/output qparams.
QuantizedUnit quantize_layer(const std::string& name, const Layer& layer, Activation act,
                             Granularity gran, QuantMode mode, const QParams& in,
                             const QParams& out);
/// A layer's weight granularity: its override's, else the global one.
Granularity granularity_for(const std::string& name, Granularity global,
                            const std::map<std::string, LayerOverride>& overrides);
/// The first `take` rows (batch axis) of a batch of at least that many rows:
/// the samples a calibrator keeps for the SQNR fallback and layer_report.
Tensor leading_rows(const Tensor& batch, int64_t take);
/// A layer report row's sums over the samples (layer_report, for
/// QuantizedModel and QuantizedGraph alike).
struct ErrorSums {
  double signal = 0, noise = 0, dot = 0, test2 = 0, max_abs = 0, iso_noise = 0;
  /// Adds one sample: the FP32 output, the quantized model's and the unit's
  /// alone on the FP32 input (sparq::Error naming the unit if sizes differ).
  void add(const Tensor& ref, const Tensor& got, const Tensor& iso, const std::string& name);
  LayerError error(std::string name, std::string description) const;
};
/// An observer for a u8 per-tensor activation (the config's spec adjusted).
std::unique_ptr<Observer> make_activation_observer(ObserverConfig config, const std::string& name);

/// y[i] = f(x[i]) for every element (the parameterless activations of any shape).
template <class F>
Tensor map_elements(const Tensor& x, F f) {
  Tensor y = x;
  for (float& v : y.data) v = f(v);
  return y;
}

/// Threads for `units` independent pieces of work: sparq::num_threads(),
/// at most one per unit (1 without OpenMP).
int parallel_threads(int64_t units);

/// The team the last for_each_block ran on (what tests check that
/// sparq::set_num_threads governs the layers), and its recorder.
int last_block_team() noexcept;
void record_block_team(int threads) noexcept;

/// Runs f(i) for i in [0, count): i = 0 first on the calling thread, so an
/// argument error is thrown there and never out of a parallel region (the
/// other pieces share its arguments), then the rest on `threads` OpenMP
/// threads. A GEMM called inside runs on its thread alone (OpenMP does not
/// nest parallel regions by default; the GEMM plans for the threads it gets).
template <class F>
void for_each_block(int64_t count, int threads, F&& f) {
  if (count <= 0) return;
  f(int64_t{0});
#if defined(SPARQ_WITH_OPENMP)
  if (threads > 1 && count > 1) {
#pragma omp parallel num_threads(threads)
    {
#pragma omp single nowait
      record_block_team(omp_get_num_threads());
#pragma omp for schedule(dynamic)
      for (int64_t i = 1; i < count; ++i) f(i);
    }
    return;
  }
#endif
  (void)threads;
  record_block_team(1);
  for (int64_t i = 1; i < count; ++i) f(i);
}

// Graph operators (graph.cpp).
/// Runs a node operator on its inputs (count already checked).
Tensor run_node_op(const NodeOp& op, std::span<const Tensor* const> inputs);
/// Calls f(prefix + name, tensor) for every parameter of a node operator.
void for_each_node_param(NodeOp& op, const std::string& prefix, const ParamVisitor& f);

// The interpreter (interpreter.cpp), shared by QuantizedModel and QuantizedGraph.
Act act_from_tensor(const Tensor& x);
Tensor act_to_tensor(Act a);
void act_to_float(Act& a);
void act_to_u8(Act& a, const QParams& qp);
/// Runs one unit (QLinear, QConv2d, MaxPool2d, Flatten or FP32 block).
Act run_unit_act(const QuantizedUnit& u, Act in);
/// The same into `out`, reusing its buffers (`in` may be converted in place
/// between FP32 and u8, and a Flatten hands its buffers over to `out`).
void run_unit_into(const QuantizedUnit& u, Act& in, Act& out);
/// Bytes of a unit's weights as the kernels read them (int8 + FP32 parameters).
std::size_t unit_weight_bytes(const QuantizedUnit& u);
/// A static or dynamic QConv2d, optionally with a fused max pool (see
/// QuantizedModel::forward) or a residual input (static, not depthwise).
Act run_conv(const QConv2d& c, Act in, const MaxPool2d* pool = nullptr,
             const ConvResidual* residual = nullptr);
void run_conv_into(const QConv2d& c, Act& in, Act& out, const MaxPool2d* pool = nullptr,
                   const ConvResidual* residual = nullptr);
/// True when `pool` can run fused after conv `c` (run_conv's `pool`) on an
/// input of shape `shape`: both would succeed alone and the conv uses im2col.
bool fusable(const QConv2d& c, const MaxPool2d& pool, const std::vector<int64_t>& shape);

// Quantized graphs (graph_quantized.cpp), shared with their model files
// (model_file.cpp) and `sparq inspect`.
/// The multipliers s_r / (s_in * s_w[n]) of a residual fused into a static
/// convolution, one list per group: what quantize_static derives and a
/// loaded file rebuilds, so both give bit-identical outputs.
std::vector<std::vector<QuantizedMultiplier>> residual_multipliers(const QConv2d& conv,
                                                                   const QParams& residual);

}  // namespace sparq::nn::detail

namespace sparq::nn {

struct QuantizedGraph::Impl {
  struct Step {
    std::string name;
    std::vector<std::string> inputs;
    std::variant<QuantizedUnit, NodeOp> op;  ///< INT8 unit, or an FP32 graph operator
    std::string residual;
    QParams residual_qparams;
    std::vector<std::vector<QuantizedMultiplier>> residual_multipliers;  ///< per group
    std::vector<std::string> covers;
  };
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  std::vector<Step> steps;
};

}  // namespace sparq::nn
