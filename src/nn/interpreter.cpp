// The INT8 interpreter shared by QuantizedModel and QuantizedGraph: activation
// conversions between FP32 and u8, and one function per unit kind (QLinear,
// QConv2d with its fused pool or residual, depthwise convolutions, MaxPool2d,
// Flatten, FP32 blocks), each writing into a caller's Act so buffers can be
// reused (nn::Workspace).
#include "sparq/nn/quantized.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <new>
#include <utility>

#include "kernels/depthwise_kernels.hpp"
#include "kernels/observe_kernels.hpp"
#include "nn/nn_internal.hpp"
#include "quant/dynamic_qparams.hpp"
#include "sparq/error.hpp"
#include "sparq/isa.hpp"
#include "sparq/threads.hpp"
#include "sparq/nn/sequential.hpp"
#include "sparq/quant/quantize.hpp"
#include "sparq/quant/requantize.hpp"

namespace sparq::nn {

using sparq::detail::fail;

// ------------------------------------------------------------ execution
namespace detail {

/// The dynamic qparams of an FP32 activation (its whole range).
QParams dynamic_qparams(const Act& x) {
  return sparq::detail::dynamic_u8_qparams(x.floats(), 1, static_cast<int64_t>(x.float_count()), 0,
                                           "dynamic quantization");
}

// Conversions reuse the activation's buffers (clear() keeps the capacity), so
// a serving loop on a Workspace stops allocating after its first call.
void act_to_float(Act& a) {
  if (!a.quantized) return;
  a.f.resize(a.q.size());
  sparq::detail::dequantize_tensor(DType::u8, a.q.data(), a.f.data(), a.q.size(), a.qp.scale,
                                   a.qp.zero_point);
  a.quantized = false;
  a.q.clear();
}

void act_to_u8(Act& a, const QParams& qp) {
  if (a.quantized && a.qp == qp) return;
  act_to_float(a);
  // The public quantizer's dispatched loop: clamp(nearbyint(x * (1 / scale)) + zp), NaN -> zp.
  const std::size_t n = a.float_count();
  a.q.resize(n);
  sparq::detail::quantize_tensor(DType::u8, a.floats(), a.q.data(), n, 1.0f / qp.scale,
                                 qp.zero_point, 0, 255);
  a.qp = qp;
  a.quantized = true;
  a.f.clear();
  a.src = nullptr;
}

namespace {
std::atomic<int> g_block_team{1};
}  // namespace

int last_block_team() noexcept { return g_block_team.load(std::memory_order_relaxed); }
void record_block_team(int threads) noexcept {
  g_block_team.store(threads, std::memory_order_relaxed);
}

int parallel_threads(int64_t units) {
#if defined(SPARQ_WITH_OPENMP)
  return static_cast<int>(std::clamp<int64_t>(units, 1, sparq::num_threads()));
#else
  (void)units;
  return 1;
#endif
}

void run_linear(const QLinear& l, Act& in, Act& out) {
  if (in.shape.empty() || in.shape.back() != l.in_features) {
    fail("QLinear: input shape {} must end with in_features = {}", shape_to_string(in.shape),
         l.in_features);
  }
  const int64_t m = checked_numel(in.shape) / l.in_features;
  out.src = nullptr;
  out.shape = in.shape;
  out.shape.back() = l.out_features;
  const auto count = static_cast<std::size_t>(m * l.out_features);
  if (l.mode == QuantMode::dynamic) {
    act_to_float(in);
    out.quantized = false;
    out.q.clear();
    out.f.resize(count);
    if (m > 0) {
      DynamicOptions o;
      o.relu = l.activation != Activation::none;
      o.per_row = l.per_row;
      l.weights->linear_dynamic(in.floats(), m, l.in_features, l.bias, out.f.data(), l.out_features,
                                o);
      if (l.activation == Activation::relu6)
        detail::apply_activation(out.f.data(), m * l.out_features, Activation::relu6);
    }
  } else {
    act_to_u8(in, l.input_qparams);
    out.quantized = true;
    out.qp = l.output_qparams;
    out.f.clear();
    out.q.resize(count);
    if (m > 0) {
      l.weights->gemm(ActivationsU8{in.q.data(), m, l.in_features, l.in_features, in.qp.zero_point},
                      l.stage, out.q.data(), l.out_features);
    }
  }
}

/// Depthwise convolution, direct: integer accumulators, then the requantize
/// stage's exact scalar arithmetic (static) or the dequantize formula (dynamic).
void depthwise(const QConv2d& c, const Act& in, int64_t oh, int64_t ow, Act& out) {
  const int64_t b = in.shape[0], h = in.shape[1], w = in.shape[2], ch = c.in_channels;
  const int64_t mult = c.out_channels / ch, taps = c.kernel_h * c.kernel_w;
  const int32_t zp = in.qp.zero_point;
  for (int64_t n = 0; n < b; ++n)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        const int64_t row = (n * oh + oy) * ow + ox;
        for (int64_t o = 0; o < c.out_channels; ++o) {
          const int64_t ic = o / mult;
          const int8_t* wv = c.weights[ic]->values().data() + (o % mult) * taps;
          int32_t acc = 0;
          for (int64_t ky = 0; ky < c.kernel_h; ++ky) {
            const int64_t iy = oy * c.stride_h - c.pad_h + ky * c.dilation_h;
            if (iy < 0 || iy >= h) continue;
            for (int64_t kx = 0; kx < c.kernel_w; ++kx) {
              const int64_t ix = ox * c.stride_w - c.pad_w + kx * c.dilation_w;
              if (ix < 0 || ix >= w) continue;
              const int32_t a = in.q[((n * h + iy) * w + ix) * ch + ic];
              acc += (a - zp) * wv[ky * c.kernel_w + kx];
            }
          }
          if (c.mode == QuantMode::static_) {
            const RequantizeStage& s = c.stages[ic];
            const int64_t j = o % mult;
            const int64_t sum = static_cast<int64_t>(acc) + (s.bias.empty() ? 0 : s.bias[j]);
            const auto acc32 = static_cast<int32_t>(std::clamp<int64_t>(
                sum, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
            out.q[row * c.out_channels + o] = static_cast<uint8_t>(
                requantize(acc32, s.multipliers[j], s.output_zero_point, s.clamp_min, s.clamp_max));
          } else {
            float y = static_cast<float>(acc) * (in.qp.scale * c.weights[ic]->scales()[o % mult]);
            if (!c.bias.empty()) y += c.bias[o];
            out.f[row * c.out_channels + o] = y;
          }
        }
      }
}

/// Depthwise convolution with one output per channel (MobileNet's kind),
/// channels innermost: the per-ISA row kernel (src/kernels/
/// depthwise_kernels.hpp) sums every channel of a run of output pixels over
/// the taps, weights laid out as [tap pair][channel][2] so that one multiply-add
/// covers two taps, and a row of output pixels goes through the GEMM's
/// output stage kernels (sparq::apply_stage): the same int32 sums and the
/// same stage arithmetic as depthwise() above, hence the same bits for a
/// static layer. Rows of the output run on sparq::num_threads() threads.
void depthwise_one_per_channel(const QConv2d& c, const Act& in, int64_t oh, int64_t ow, Act& out) {
  const int64_t b = in.shape[0], h = in.shape[1], w = in.shape[2], ch = c.in_channels;
  const int64_t taps = c.kernel_h * c.kernel_w, pairs = (taps + 1) / 2;
  // Each sum has at most `taps` terms of magnitude <= 255 * 128 (see the kernels' header).
  constexpr int64_t kMaxTaps = (int64_t{1} << 31) / (255 * 128) - 1;
  if (taps > kMaxTaps) {
    fail("QConv2d: a depthwise kernel of {} x {} has {} taps; at most {} keep its int32 sums exact",
         c.kernel_h, c.kernel_w, taps, kMaxTaps);
  }
  const int32_t zp = in.qp.zero_point;
  // Per-call scratch kept across calls (grow-only), so a serving loop does
  // not allocate here. Bound to references: the row lambda runs on other
  // threads too and must read this thread's copies.
  thread_local std::vector<int16_t> wt_scratch;
  thread_local std::vector<int32_t> zp_w_scratch;
  thread_local std::vector<uint8_t> zp_row_scratch;
  thread_local RequantizeStage st_scratch;
  thread_local DequantizeStage dq_scratch;
  thread_local std::vector<float> scales_scratch;
  std::vector<int16_t>& wt = wt_scratch;
  std::vector<int32_t>& zp_w = zp_w_scratch;
  std::vector<uint8_t>& zp_row = zp_row_scratch;
  RequantizeStage& st = st_scratch;
  DequantizeStage& dq = dq_scratch;
  std::vector<float>& scales = scales_scratch;
  wt.assign(static_cast<std::size_t>(pairs * ch * 2), 0);  // an odd last tap pairs with weight 0
  zp_w.assign(static_cast<std::size_t>(ch), 0);
  for (int64_t ic = 0; ic < ch; ++ic) {
    const int8_t* v = c.weights[ic]->values().data();
    int32_t sum = 0;
    for (int64_t t = 0; t < taps; ++t) {
      wt[static_cast<std::size_t>(((t / 2) * ch + ic) * 2 + t % 2)] = v[t];
      sum += v[t];
    }
    zp_w[static_cast<std::size_t>(ic)] = zp * sum;
  }
  const bool is_static = c.mode == QuantMode::static_;
  st.multipliers.clear();
  st.bias.clear();
  scales.clear();
  if (is_static) {
    const bool bias = !c.stages[0].bias.empty();
    for (int64_t ic = 0; ic < ch; ++ic) {
      st.multipliers.push_back(c.stages[ic].multipliers[0]);
      if (bias) st.bias.push_back(c.stages[ic].bias[0]);
    }
    st.output_zero_point = c.stages[0].output_zero_point;
    st.clamp_min = c.stages[0].clamp_min;
    st.clamp_max = c.stages[0].clamp_max;
  } else {
    for (int64_t ic = 0; ic < ch; ++ic) scales.push_back(c.weights[ic]->scales()[0]);
    dq.activation_scale = in.qp.scale;
    dq.bias = c.bias;
  }
  const int64_t rows = b * oh;
  // Output pixels whose taps all fall inside the image columns form one run
  // per row: one kernel call, pixel q reading x[t] + q * stride_w * ch. The
  // border pixels go one by one. A tap in the zero padding (and the pad tap
  // of an odd count) reads the zero-point run, long enough for a whole row.
  const int64_t x_step = c.stride_w * ch;
  const int64_t first_inside = (c.pad_w + c.stride_w - 1) / c.stride_w;
  const int64_t span = w - 1 + c.pad_w - (c.kernel_w - 1) * c.dilation_w;  // floor division:
  const int64_t last_inside =
      span < 0 ? -1 : std::min(ow - 1, span / c.stride_w);  // < first: no run
  zp_row.assign(static_cast<std::size_t>(ow * x_step + ch), static_cast<uint8_t>(zp));
  const sparq::detail::DepthwiseRowFn kernel =
      sparq::detail::depthwise_kernels(active_isa()).row_u8s16;
  auto row = [&](int64_t r, std::vector<int32_t>& sums, std::vector<const uint8_t*>& x) {
    const int64_t n = r / oh, oy = r % oh;
    sums.resize(static_cast<std::size_t>(ow * ch));
    x.assign(static_cast<std::size_t>(2 * pairs), zp_row.data());
    auto run = [&](int64_t ox, int64_t pixels) {
      for (int64_t ky = 0; ky < c.kernel_h; ++ky) {
        const int64_t iy = oy * c.stride_h - c.pad_h + ky * c.dilation_h;
        for (int64_t kx = 0; kx < c.kernel_w; ++kx) {
          const int64_t ix = ox * c.stride_w - c.pad_w + kx * c.dilation_w;
          const bool inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
          x[static_cast<std::size_t>(ky * c.kernel_w + kx)] =
              inside ? in.q.data() + ((n * h + iy) * w + ix) * ch : zp_row.data();
        }
      }
      kernel({.x = x.data(),
              .x_step = x_step,
              .pixels = pixels,
              .w = wt.data(),
              .zp_w = zp_w.data(),
              .pairs = pairs,
              .ch = ch,
              .acc = sums.data() + ox * ch});
    };
    if (first_inside > last_inside) {
      for (int64_t ox = 0; ox < ow; ++ox) run(ox, 1);
    } else {
      for (int64_t ox = 0; ox < first_inside; ++ox) run(ox, 1);
      run(first_inside, last_inside - first_inside + 1);
      for (int64_t ox = last_inside + 1; ox < ow; ++ox) run(ox, 1);
    }
    const int64_t o = r * ow * ch;
    if (is_static) {
      apply_stage(sums.data(), ow, ch, ch, st, out.q.data() + o, ch);
    } else {
      apply_stage(sums.data(), ow, ch, ch, scales, dq, out.f.data() + o, ch);
    }
  };
  thread_local std::vector<int32_t> sums;  // one per thread
  thread_local std::vector<const uint8_t*> tap_rows;
  detail::for_each_block(rows, detail::parallel_threads(rows),
                         [&](int64_t r) { row(r, sums, tap_rows); });
}

/// True when `pool` can run fused after conv `c` on input shape `shape`:
/// both units would succeed on their own (the unfused path reports the
/// errors, under the right unit's name) and the conv goes through im2col.
bool fusable(const QConv2d& c, const MaxPool2d& pool, const std::vector<int64_t>& shape) {
  if (c.depthwise() || shape.size() != 4 || shape[3] != c.in_channels) return false;
  try {
    const int64_t oh = c.out_h(shape[1]), ow = c.out_w(shape[2]);
    pool.validate();
    return pool.out_h(oh) > 0 && pool.out_w(ow) > 0 && shape[0] > 0;
  } catch (const Error&) {
    return false;
  }
}

/// A convolution unit, optionally followed by a max pooling unit (`pool`,
/// which fusable() accepted). The patch matrix is built and multiplied a
/// block of rows at a time (see im2col_block_rows) in a buffer kept across
/// calls: no per-call allocation, and the block is still in cache when the
/// GEMM packs it. With a pool, blocks are whole images and each block's
/// conv output (in a second reused buffer) is pooled while it is in cache,
/// so the full-resolution activation never goes to memory. Every output row
/// depends only on its own patch row, and the pool sees exactly the values
/// the conv unit would have produced, so neither changes a single bit.
void run_conv_into(const QConv2d& c, Act& in, Act& out, const MaxPool2d* pool,
                   const ConvResidual* residual) {
  detail::check_nhwc(in.shape, c.in_channels, "QConv2d");
  const int64_t b = in.shape[0], h = in.shape[1], w = in.shape[2];
  const int64_t oh = c.out_h(h), ow = c.out_w(w);
  const int64_t m = b * oh * ow, cg = c.in_channels / c.groups, og = c.out_channels / c.groups;
  const int64_t patch = c.patch_size(), oc = c.out_channels;
  const bool is_static = c.mode == QuantMode::static_;
  if (residual && (pool || !is_static || c.depthwise())) {
    fail(
        "QConv2d: a residual input needs a static, non-depthwise convolution without a fused pool");
  }
  if (!is_static) {
    act_to_float(in);
    const QParams qp = dynamic_qparams(in);
    act_to_u8(in, qp);
  } else {
    act_to_u8(in, c.input_qparams);
  }
  const int64_t ph = pool ? pool->out_h(oh) : oh, pw = pool ? pool->out_w(ow) : ow;
  out.src = nullptr;
  out.shape = {b, ph, pw, oc};
  const auto count = static_cast<std::size_t>(checked_numel(out.shape));
  out.quantized = is_static;
  if (is_static) {
    out.qp = c.output_qparams;
    out.f.clear();
    out.q.resize(count);
  } else {
    out.q.clear();
    out.f.resize(count);
  }
  if (m == 0) return;
  if (c.depthwise()) {
    if (c.out_channels == c.in_channels) {
      depthwise_one_per_channel(c, in, oh, ow, out);
    } else {
      depthwise(c, in, oh, ow, out);
    }
    if (!is_static)
      detail::apply_activation(out.f.data(), static_cast<int64_t>(count), c.activation);
    return;
  }
  const int64_t image = oh * ow;
  // Conv + pool with dense weights: pool the exact int32 sums, then
  // requantize (static) or dequantize and activate (dynamic) only the pooled
  // values (a quarter of them for a 2x2 pool). Requantization (saturating
  // bias add, fixed-point multiply by a multiplier >= 0, rounding shift,
  // clamp), dequantization (fma(float(sum), scale > 0, bias)) and ReLU/ReLU6
  // are all non-decreasing in the sum, so max commutes with them: the same
  // bits as the output stage first. Every window has a real tap
  // (MaxPool2d::validate), so the int32 identity never reaches the output.
  // Limited to K whose sums always fit in int32 (|a - zp| * |w| <= 255 *
  // 128), where the GEMM's output stages see the same sums.
  const bool pool_sums = pool && patch <= (int64_t{1} << 31) / (255 * 128) - 1;
  int64_t block = detail::im2col_block_rows(patch + oc * (is_static && !pool_sums ? 1 : 4), m);
  // Without a fused pool, blocks are independent: with several threads each
  // takes whole blocks (its own patch rows, a one-thread GEMM: the GEMM's
  // own parallel region nests to one thread), so im2col runs in parallel
  // too and no GEMM call is too small for the team. Blocks shrink so every
  // thread gets one even at batch 1.
  const int threads = pool ? 1 : detail::parallel_threads(m);
  if (threads > 1) block = std::min(block, (m + threads - 1) / threads);
  if (pool) block = std::max<int64_t>(1, block / image) * image;
  thread_local std::vector<uint8_t> cols;
  thread_local Buffer<uint8_t> conv_q;  // the conv output of one block, when pooled
  thread_local Buffer<float> conv_f;
  thread_local Buffer<int32_t> conv_s, pooled_s;  // sums of one block and their pool
  auto reserve = [](auto& buf, int64_t n) {
    if (buf.size() < static_cast<std::size_t>(n)) buf.resize(static_cast<std::size_t>(n));
  };
  // A 1x1 convolution with stride 1 and no padding multiplies the NHWC input
  // itself: its patch matrix would be a copy of it.
  const bool pointwise = c.kernel_h == 1 && c.kernel_w == 1 && c.stride_h == 1 && c.stride_w == 1 &&
                         c.pad_h == 0 && c.pad_w == 0 && c.groups == 1;
  if (pool_sums) {
    reserve(conv_s, block * oc);
    reserve(pooled_s, block / image * ph * pw * oc);
  } else if (pool) {
    is_static ? reserve(conv_q, block * oc) : reserve(conv_f, block * oc);
  }
  thread_local std::vector<DequantizeStage> dq_scratch;  // kept across calls: no allocation
  std::vector<DequantizeStage>& dq = dq_scratch;         // this thread's, in the lambda too
  dq.resize(is_static ? 0 : static_cast<std::size_t>(c.groups));
  for (int64_t g = 0; g < static_cast<int64_t>(dq.size()); ++g) {
    dq[g].activation_scale = in.qp.scale;
    dq[g].bias.clear();
    if (!c.bias.empty()) dq[g].bias.assign(c.bias.begin() + g * og, c.bias.begin() + (g + 1) * og);
  }
  auto run_block = [&](int64_t index) {
    const int64_t r0 = index * block;
    const int64_t r1 = std::min(m, r0 + block);
    if (!pointwise) reserve(cols, block * patch);  // per thread (thread_local)
    uint8_t* yq = is_static ? (pool ? conv_q.data() : out.q.data() + r0 * oc) : nullptr;
    float* yf = is_static ? nullptr : (pool ? conv_f.data() : out.f.data() + r0 * oc);
    for (int64_t g = 0; g < c.groups; ++g) {
      const uint8_t* rows = in.q.data() + r0 * patch;
      if (!pointwise) {
        detail::im2col(in.q.data(), h, w, c.in_channels, c, g * cg, cg, oh, ow,
                       static_cast<uint8_t>(in.qp.zero_point), r0, r1, cols.data());
        rows = cols.data();
      }
      const ActivationsU8 a{rows, r1 - r0, patch, patch, in.qp.zero_point};
      if (pool_sums) {
        c.weights[g]->gemm(a, conv_s.data() + g * og, oc);
      } else if (is_static && residual) {
        RequantizeStage with_residual = c.stages[g];
        with_residual.residual = ResidualInput{residual->data + r0 * oc + g * og, false, oc,
                                               residual->zero_point, (*residual->multipliers)[g]};
        c.weights[g]->gemm(a, with_residual, yq + g * og, oc);
      } else if (is_static) {
        c.weights[g]->gemm(a, c.stages[g], yq + g * og, oc);
      } else {
        c.weights[g]->gemm(a, dq[g], yf + g * og, oc);
      }
    }
    if (!is_static && !pool_sums) detail::apply_activation(yf, (r1 - r0) * oc, c.activation);
    if (!pool) return;
    const int64_t n0 = r0 / image, n = (r1 - r0) / image;
    uint8_t* pooled_q = is_static ? out.q.data() + n0 * ph * pw * oc : nullptr;
    if (pool_sums) {
      detail::max_pool(conv_s.data(), n, oh, ow, oc, *pool, ph, pw, pooled_s.data());
      const int64_t rows = n * ph * pw;
      for (int64_t g = 0; g < c.groups; ++g) {
        const int32_t* sums = pooled_s.data() + g * og;
        if (is_static) {
          apply_stage(sums, rows, og, oc, c.stages[g], pooled_q + g * og, oc);
        } else {
          apply_stage(sums, rows, og, oc, c.weights[g]->scales(), dq[g],
                      out.f.data() + n0 * ph * pw * oc + g * og, oc);
        }
      }
      if (!is_static) {
        detail::apply_activation(out.f.data() + n0 * ph * pw * oc, rows * oc, c.activation);
      }
    } else if (is_static) {
      detail::max_pool(yq, n, oh, ow, oc, *pool, ph, pw, pooled_q);
    } else {
      detail::max_pool(yf, n, oh, ow, oc, *pool, ph, pw, out.f.data() + n0 * ph * pw * oc);
    }
  };
  detail::for_each_block((m + block - 1) / block, threads, run_block);
}

Act run_conv(const QConv2d& c, Act in, const MaxPool2d* pool, const ConvResidual* residual) {
  Act out;
  run_conv_into(c, in, out, pool, residual);
  return out;
}

void run_pool(const MaxPool2d& p, Act& in, Act& out) {
  detail::check_nhwc(in.shape, 0, "MaxPool2d");
  p.validate();
  const int64_t b = in.shape[0], h = in.shape[1], w = in.shape[2], c = in.shape[3];
  const int64_t oh = p.out_h(h), ow = p.out_w(w);
  out.src = nullptr;
  out.shape = {b, oh, ow, c};
  out.quantized = in.quantized;
  out.qp = in.qp;
  const auto count = static_cast<std::size_t>(checked_numel(out.shape));
  // Max commutes with the monotonic dequantization, so u8 pooling is exact.
  if (in.quantized) {
    out.f.clear();
    out.q.resize(count);
    detail::max_pool(in.q.data(), b, h, w, c, p, oh, ow, out.q.data());
  } else {
    out.q.clear();
    out.f.resize(count);
    detail::max_pool(in.floats(), b, h, w, c, p, oh, ow, out.f.data());
  }
}

void run_unit_into(const QuantizedUnit& u, Act& in, Act& out) {
  std::visit(
      [&](const auto& op) {
        using T = std::decay_t<decltype(op)>;
        if constexpr (std::is_same_v<T, QLinear>) {
          run_linear(op, in, out);
        } else if constexpr (std::is_same_v<T, QConv2d>) {
          run_conv_into(op, in, out);
        } else if constexpr (std::is_same_v<T, MaxPool2d>) {
          run_pool(op, in, out);
        } else if constexpr (std::is_same_v<T, Flatten>) {
          // Only the shape changes: the values (and buffers) move over.
          if (in.shape.empty()) fail("Flatten: input must have a batch axis (got rank 0)");
          const int64_t b = in.shape[0], n = checked_numel(in.shape);
          out.shape.assign({b, b == 0 ? 0 : n / b});
          out.quantized = in.quantized;
          out.qp = in.qp;
          out.src = in.src;
          std::swap(out.f, in.f);
          std::swap(out.q, in.q);
        } else {
          act_to_float(in);
          const float* x = in.floats();
          Tensor t(in.shape, std::vector<float>(x, x + in.float_count()));
          for (const Layer& l : op.layers) t = forward(l, t);
          out.src = nullptr;
          out.quantized = false;
          out.q.clear();
          out.shape = t.shape;
          out.f.assign(t.data.begin(), t.data.end());
        }
      },
      u.op);
}

Act run_unit_act(const QuantizedUnit& u, Act in) {
  Act out;
  run_unit_into(u, in, out);
  return out;
}

Act act_from_tensor(const Tensor& x) {
  Act a;
  a.shape = x.shape;
  a.f.assign(x.data.begin(), x.data.end());
  if (checked_numel(a.shape, "QuantizedModel input") != static_cast<int64_t>(a.f.size())) {
    fail("QuantizedModel: input has {} values but shape {}", a.f.size(), shape_to_string(a.shape));
  }
  return a;
}

Tensor act_to_tensor(Act a) {
  act_to_float(a);
  const float* x = a.floats();
  return Tensor(std::move(a.shape), std::vector<float>(x, x + a.float_count()));
}

}  // namespace detail
}  // namespace sparq::nn
