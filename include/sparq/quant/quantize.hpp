// Affine quantize / dequantize / fake-quantize of fp32 tensors.
//
// Definition (the scalar reference every SIMD kernel matches bit for bit):
//
//   quantize:    q = clamp(round_half_even(x * inv_scale) + zero_point, qmin, qmax)
//                with inv_scale = 1.0f / scale computed once in float32
//   dequantize:  x = float(q - zero_point) * scale
//   fake_quantize(x) = dequantize(quantize(x))
//   STE mask:    1 where qmin <= round_half_even(x * inv_scale) + zero_point <= qmax,
//                else 0 (the gradient of fake_quantize w.r.t. x is mask * grad)
//
// Multiplying by the float reciprocal (instead of dividing by scale) is what
// PyTorch's quantize_per_tensor (fbgemm::Quantize) and fake_quantize kernels
// do; it gives the same q as PyTorch on the same float inputs, and it is
// what the SIMD kernels can do at memory speed. It can differ from
// round(x / scale) by one step at exact ties.
//
// Special values (defined here because C++ leaves float->int of them undefined):
//   NaN  -> zero_point (clamped into [qmin, qmax]); so fake_quantize(NaN) = 0.0
//           (or the value of the clamped zero point) and its STE mask is 0.
//   +Inf -> qmax, -Inf -> qmin (saturation, as for any out-of-range value);
//           the STE mask is 0 there.
//   Huge finite values saturate the same way.
//
// Rounding: the kernels use the CPU's conversion in its default mode
// (round to nearest, ties to even: cvtps2dq / FCVTNS / std::nearbyint). sparq
// never changes the floating-point environment; if your program changes the
// rounding mode (fesetround) the results follow it, the same way on every ISA.
//
// Tensors are row-major with a shape given as std::span<const int64_t>
// (every extent >= 1; an empty shape is a scalar with one element). For
// per-channel quantization the channel axis may be negative (counts from the
// end). A tensor of shape [d0, ..., d(r-1)] with channel axis a is handled as
// [outer, channels, inner]: every channel's values form runs of `inner`
// contiguous elements, which go to the SIMD kernels whole.
//
// Two front ends:
//   * Quantizer<T, Scheme, Granularity>: storage type, scheme and granularity
//     fixed at compile time. Quantizer<int8_t> (symmetric, per tensor) has a
//     compile-time zero point of 0 and goes straight to the per-tensor int8
//     kernel with nothing decided per element.
//   * quantize(x, shape, spec, qparams, out) and friends: take a QuantSpec
//     chosen at run time, check it against the storage type of `out`, and
//     dispatch onto the matching Quantizer.
//
// Errors: sparq::Error naming the argument, the value and the expectation,
// for an empty input, mismatched sizes, a bad shape, an axis out of range, a
// scale that is <= 0, non-finite or whose reciprocal is not finite, a zero
// point outside the storage type, a channel count that is not the extent of
// the channel axis, or a spec whose dtype/granularity does not match the call.
//
// Storage types: int8_t and uint8_t (QuantTraits in qparams.hpp). A 4-bit type
// would add a QuantTraits specialisation (range [-8, 7] / [0, 15]) and its
// packed kernels; nothing here assumes more than QuantTraits<T>::lowest,
// highest and dtype.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "sparq/error.hpp"
#include "sparq/quant/qparams.hpp"

namespace sparq {

/// A row-major tensor shape.
using Shape = std::span<const int64_t>;

namespace detail {

/// One element of quantize: lo = qmin - zp, hi = qmax - zp (as floats).
inline int32_t quantize_element(float x, float inv_scale, int32_t zp, float lo, float hi) noexcept {
  float t = x * inv_scale;
  if (std::isnan(t)) t = 0.0f;
  t = std::fmin(std::fmax(t, lo), hi);
  return static_cast<int32_t>(std::nearbyint(t)) + zp;
}

template <class T>
inline float dequantize_element(T q, float scale, int32_t zp) noexcept {
  return static_cast<float>(static_cast<int32_t>(q) - zp) * scale;
}

/// A tensor seen as [outer, channels, inner] around its channel axis.
struct ChannelLayout {
  std::size_t outer = 1, channels = 1, inner = 1;
  std::size_t size() const { return outer * channels * inner; }
};

/// Validates `shape` (extents >= 1, product == n) and returns the element count.
std::size_t checked_element_count(Shape shape, std::size_t n, const char* who);
/// Normalises a possibly negative axis against `rank`; throws if out of range.
int normalize_axis(int axis, std::size_t rank, const char* who);
/// The [outer, channels, inner] view of `shape` around `axis` (validated).
ChannelLayout channel_layout(Shape shape, std::size_t n, int axis, const char* who);
/// Throws unless scale is finite, > 0 and has a finite reciprocal.
void check_scale(float scale, const char* who, std::size_t channel = SIZE_MAX);
/// Throws unless zero_point lies inside the range of `dtype`.
void check_zero_point(int32_t zero_point, DType dtype, const char* who,
                      std::size_t channel = SIZE_MAX);
/// A Quantizer's checks of one (scale, zero point) pair, of channel
/// `channel` (SIZE_MAX: per tensor): check_scale, check_zero_point and, with
/// `zero_must_be_0` (a signed symmetric quantizer), zero_point == 0.
void check_qparam(float scale, int32_t zero_point, DType dtype, bool zero_must_be_0,
                  std::size_t channel = SIZE_MAX);
/// Throws unless dtype_lowest <= qmin < qmax <= dtype_highest.
void check_qrange(int32_t qmin, int32_t qmax, DType dtype, const char* who);

// Dispatched bulk operations (src/quant/quantize.cpp): look the active ISA's
// kernel table up once, then loop over [outer] (and channels) calling kernels
// on contiguous runs. Arguments are already validated.
void quantize_tensor(DType dtype, const float* src, void* dst, std::size_t n, float inv_scale,
                     int32_t zp, int32_t qmin, int32_t qmax);
void dequantize_tensor(DType dtype, const void* src, float* dst, std::size_t n, float scale,
                       int32_t zp);
void quantize_channels(DType dtype, const float* src, void* dst, ChannelLayout layout,
                       const float* inv_scales, const int32_t* zero_points, int32_t qmin,
                       int32_t qmax);
void dequantize_channels(DType dtype, const void* src, float* dst, ChannelLayout layout,
                         const float* scales, const int32_t* zero_points);

template <class A, class B>
void check_same_size(std::span<A> a, std::span<B> b, const char* who, const char* a_name,
                     const char* b_name) {
  if (a.size() != b.size()) {
    fail("{}: {} has {} elements but {} has {}; expected equal sizes", who, b_name, b.size(),
         a_name, a.size());
  }
}

inline void check_mask(std::span<uint8_t> mask, std::size_t n, const char* who) {
  if (!mask.empty() && mask.size() != n) {
    fail("{}: mask has {} elements; expected 0 (no mask) or {}", who, mask.size(), n);
  }
}

/// What every Quantizer specialisation says about itself at compile time.
template <class T, Scheme S, Granularity G>
struct QuantizerTraits {
  using storage_type = T;
  static constexpr Scheme scheme = S;
  static constexpr Granularity granularity = G;
  static constexpr DType dtype = QuantTraits<T>::dtype;
};

}  // namespace detail

template <class T, Scheme S = Scheme::symmetric, Granularity G = Granularity::per_tensor>
class Quantizer;

/// Per-tensor quantizer with storage type T (int8_t or uint8_t) and scheme S.
/// For a signed T with the symmetric scheme the zero point is the
/// compile-time constant 0 (the constructor rejects any other); otherwise it
/// is taken from the QParams (PyTorch's symmetric uint8 uses 128).
template <class T, Scheme S>
class Quantizer<T, S, Granularity::per_tensor>
    : public detail::QuantizerTraits<T, S, Granularity::per_tensor> {
  static constexpr bool kFixedZero = S == Scheme::symmetric && std::is_signed_v<T>;

 public:
  // Named here because members of a dependent base are not found unqualified.
  using detail::QuantizerTraits<T, S, Granularity::per_tensor>::dtype;

  /// [qmin, qmax] defaults to the whole storage range; pass spec.qmin(),
  /// spec.qmax() for narrow/reduced/custom ranges.
  explicit Quantizer(QParams qp, int32_t qmin = QuantTraits<T>::lowest,
                     int32_t qmax = QuantTraits<T>::highest)
      : scale_(qp.scale), zero_point_(qp.zero_point), qmin_(qmin), qmax_(qmax) {
    detail::check_qparam(qp.scale, qp.zero_point, dtype, kFixedZero);
    detail::check_qrange(qmin, qmax, dtype, "Quantizer");
    inv_scale_ = 1.0f / scale_;
  }

  QParams qparams() const { return {scale_, zero_point()}; }
  int32_t zero_point() const { return kFixedZero ? 0 : zero_point_; }
  int32_t qmin() const { return qmin_; }
  int32_t qmax() const { return qmax_; }

  /// One value (same result as the bulk call).
  T quantize(float x) const noexcept {
    const int32_t zp = zero_point();
    return static_cast<T>(detail::quantize_element(
        x, inv_scale_, zp, static_cast<float>(qmin_ - zp), static_cast<float>(qmax_ - zp)));
  }
  float dequantize(T q) const noexcept {
    return detail::dequantize_element(q, scale_, zero_point());
  }

  /// out[i] = quantize(x[i]) on the active ISA's kernel.
  void quantize(std::span<const float> x, std::span<T> out) const {
    if (x.empty()) detail::fail("quantize: x is empty; expected >= 1 element");
    detail::check_same_size(x, out, "quantize", "x", "out");
    detail::quantize_tensor(dtype, x.data(), out.data(), x.size(), inv_scale_, zero_point(), qmin_,
                            qmax_);
  }
  void dequantize(std::span<const T> q, std::span<float> out) const {
    if (q.empty()) detail::fail("dequantize: q is empty; expected >= 1 element");
    detail::check_same_size(q, out, "dequantize", "q", "out");
    detail::dequantize_tensor(dtype, q.data(), out.data(), q.size(), scale_, zero_point());
  }
  /// out = dequantize(quantize(x)); mask (if not empty) receives the STE mask.
  void fake_quantize(std::span<const float> x, std::span<float> out,
                     std::span<uint8_t> mask = {}) const {
    if (x.empty()) detail::fail("fake_quantize: x is empty; expected >= 1 element");
    detail::check_same_size(x, out, "fake_quantize", "x", "out");
    detail::check_mask(mask, x.size(), "fake_quantize");
    fake_run(x.data(), out.data(), mask.empty() ? nullptr : mask.data(), x.size(), inv_scale_,
             scale_, zero_point(), qmin_, qmax_);
  }

  // Shared with the per-channel quantizer: one contiguous run of one channel.
  static void fake_run(const float* x, float* y, uint8_t* mask, std::size_t n, float inv_scale,
                       float scale, int32_t zp, int32_t qmin, int32_t qmax) noexcept {
    const float lo = static_cast<float>(qmin - zp), hi = static_cast<float>(qmax - zp);
    for (std::size_t i = 0; i < n; ++i) {
      const float r = std::nearbyint(x[i] * inv_scale);  // NaN stays NaN: fails both tests
      if (mask) mask[i] = (r >= lo && r <= hi) ? 1 : 0;
      const float c =
          std::isnan(r) ? std::fmin(std::fmax(0.0f, lo), hi) : std::fmin(std::fmax(r, lo), hi);
      y[i] = c * scale;  // c = q - zp exactly (a small integer)
    }
  }

 private:
  float scale_, inv_scale_ = 1.0f;
  int32_t zero_point_;
  int32_t qmin_, qmax_;
};

/// Per-channel quantizer: channel c of the axis `qp.axis` uses qp.scales[c],
/// qp.zero_points[c]. For a signed T with the symmetric scheme every zero
/// point must be 0.
template <class T, Scheme S>
class Quantizer<T, S, Granularity::per_channel>
    : public detail::QuantizerTraits<T, S, Granularity::per_channel> {
  using PerTensor = Quantizer<T, S, Granularity::per_tensor>;

 public:
  using detail::QuantizerTraits<T, S, Granularity::per_channel>::dtype;

  explicit Quantizer(ChannelQParams qp, int32_t qmin = QuantTraits<T>::lowest,
                     int32_t qmax = QuantTraits<T>::highest)
      : qp_(std::move(qp)), qmin_(qmin), qmax_(qmax) {
    if (qp_.scales.empty()) detail::fail("Quantizer: qparams have 0 channels; expected >= 1");
    if (qp_.zero_points.size() != qp_.scales.size()) {
      detail::fail("Quantizer: qparams have {} scales but {} zero_points; expected equal sizes",
                   qp_.scales.size(), qp_.zero_points.size());
    }
    detail::check_qrange(qmin, qmax, dtype, "Quantizer");
    inv_scales_.resize(qp_.scales.size());
    for (std::size_t c = 0; c < qp_.scales.size(); ++c) {
      detail::check_qparam(qp_.scales[c], qp_.zero_points[c], dtype,
                           S == Scheme::symmetric && std::is_signed_v<T>, c);
      inv_scales_[c] = 1.0f / qp_.scales[c];
    }
  }

  const ChannelQParams& qparams() const { return qp_; }
  int axis() const { return qp_.axis; }
  int32_t qmin() const { return qmin_; }
  int32_t qmax() const { return qmax_; }

  void quantize(std::span<const float> x, Shape shape, std::span<T> out) const {
    const auto l = layout(x.size(), shape, "quantize");
    detail::check_same_size(x, out, "quantize", "x", "out");
    detail::quantize_channels(dtype, x.data(), out.data(), l, inv_scales_.data(),
                              qp_.zero_points.data(), qmin_, qmax_);
  }
  void dequantize(std::span<const T> q, Shape shape, std::span<float> out) const {
    const auto l = layout(q.size(), shape, "dequantize");
    detail::check_same_size(q, out, "dequantize", "q", "out");
    detail::dequantize_channels(dtype, q.data(), out.data(), l, qp_.scales.data(),
                                qp_.zero_points.data());
  }
  void fake_quantize(std::span<const float> x, Shape shape, std::span<float> out,
                     std::span<uint8_t> mask = {}) const {
    const auto l = layout(x.size(), shape, "fake_quantize");
    detail::check_same_size(x, out, "fake_quantize", "x", "out");
    detail::check_mask(mask, x.size(), "fake_quantize");
    for (std::size_t o = 0; o < l.outer; ++o) {
      for (std::size_t c = 0; c < l.channels; ++c) {
        const std::size_t at = (o * l.channels + c) * l.inner;
        PerTensor::fake_run(x.data() + at, out.data() + at,
                            mask.empty() ? nullptr : mask.data() + at, l.inner, inv_scales_[c],
                            qp_.scales[c], qp_.zero_points[c], qmin_, qmax_);
      }
    }
  }

 private:
  detail::ChannelLayout layout(std::size_t n, Shape shape, const char* who) const {
    if (n == 0) detail::fail("{}: input is empty; expected >= 1 element", who);
    const auto l = detail::channel_layout(shape, n, qp_.axis, who);
    if (l.channels != qp_.scales.size()) {
      detail::fail("{}: axis {} has extent {} but the qparams have {} channels; expected equal",
                   who, qp_.axis, l.channels, qp_.scales.size());
    }
    return l;
  }

  ChannelQParams qp_;
  std::vector<float> inv_scales_;
  int32_t qmin_, qmax_;
};

// ----------------------------------------------------------------- run-time front end
//
// The spec decides scheme, granularity and [qmin, qmax]; T must match
// spec.dtype. Per-tensor calls take QParams and need spec.granularity ==
// per_tensor; per-channel calls take ChannelQParams and need per_channel
// and qp.axis equal to spec.axis (after normalising negative axes).

namespace detail {

template <class T>
void check_spec_for(const QuantSpec& spec, Granularity g, const char* who) {
  spec.validate();
  if (spec.dtype != QuantTraits<T>::dtype) {
    fail("{}: spec.dtype is {} but the output storage is {}; expected them to match", who,
         dtype_name(spec.dtype), dtype_name(QuantTraits<T>::dtype));
  }
  if (spec.granularity != g) {
    fail("{}: spec.granularity is {}; expected {} for {} qparams", who,
         spec.granularity == Granularity::per_tensor ? "per_tensor" : "per_channel",
         g == Granularity::per_tensor ? "per_tensor" : "per_channel",
         g == Granularity::per_tensor ? "QParams" : "ChannelQParams");
  }
}

inline ChannelQParams channel_qparams_for(const QuantSpec& spec, const ChannelQParams& qp,
                                          Shape shape, const char* who) {
  const int a = normalize_axis(spec.axis, shape.size(), who);
  const int b = normalize_axis(qp.axis, shape.size(), who);
  if (a != b)
    fail("{}: qparams.axis ({}) differs from spec.axis ({}); expected the same axis", who, qp.axis,
         spec.axis);
  ChannelQParams copy = qp;
  copy.axis = a;
  return copy;
}

/// Calls f(quantizer) with the Quantizer<T, scheme, G> that `spec` selects.
template <class T, Granularity G, class QP, class F>
void with_quantizer(const QuantSpec& spec, QP&& qp, F&& f) {
  if (spec.scheme == Scheme::symmetric) {
    f(Quantizer<T, Scheme::symmetric, G>(std::forward<QP>(qp), spec.qmin(), spec.qmax()));
  } else {
    f(Quantizer<T, Scheme::asymmetric, G>(std::forward<QP>(qp), spec.qmin(), spec.qmax()));
  }
}

/// The checks of the public quantize/dequantize (`who`), then
/// with_quantizer: per tensor, x's `size` must match `shape`; per channel,
/// qp must fit spec.axis of `shape`.
template <class T, class F>
void with_tensor_quantizer(const char* who, const QuantSpec& spec, const QParams& qp, Shape shape,
                           std::size_t size, F&& f) {
  check_spec_for<T>(spec, Granularity::per_tensor, who);
  checked_element_count(shape, size, who);
  with_quantizer<T, Granularity::per_tensor>(spec, qp, std::forward<F>(f));
}

template <class T, class F>
void with_channel_quantizer(const char* who, const QuantSpec& spec, const ChannelQParams& qp,
                            Shape shape, F&& f) {
  check_spec_for<T>(spec, Granularity::per_channel, who);
  with_quantizer<T, Granularity::per_channel>(spec, channel_qparams_for(spec, qp, shape, who),
                                              std::forward<F>(f));
}

}  // namespace detail

/// Per-tensor quantize of a tensor of `shape` (used only to check x's size).
template <class T>
void quantize(std::span<const float> x, Shape shape, const QuantSpec& spec, const QParams& qp,
              std::span<T> out) {
  detail::with_tensor_quantizer<T>("quantize", spec, qp, shape, x.size(),
                                   [&](const auto& q) { q.quantize(x, out); });
}

template <class T>
void dequantize(std::span<const T> q, Shape shape, const QuantSpec& spec, const QParams& qp,
                std::span<float> out) {
  detail::with_tensor_quantizer<T>("dequantize", spec, qp, shape, q.size(),
                                   [&](const auto& z) { z.dequantize(q, out); });
}

/// fake_quantize for the storage type spec.dtype (no storage is written).
inline void fake_quantize(std::span<const float> x, Shape shape, const QuantSpec& spec,
                          const QParams& qp, std::span<float> out, std::span<uint8_t> mask = {}) {
  auto run = [&](const auto& q) { q.fake_quantize(x, out, mask); };
  if (spec.dtype == DType::s8) {
    detail::with_tensor_quantizer<int8_t>("fake_quantize", spec, qp, shape, x.size(), run);
  } else {
    detail::with_tensor_quantizer<uint8_t>("fake_quantize", spec, qp, shape, x.size(), run);
  }
}

/// Per-channel quantize along spec.axis.
template <class T>
void quantize(std::span<const float> x, Shape shape, const QuantSpec& spec,
              const ChannelQParams& qp, std::span<T> out) {
  detail::with_channel_quantizer<T>("quantize", spec, qp, shape,
                                    [&](const auto& q) { q.quantize(x, shape, out); });
}

template <class T>
void dequantize(std::span<const T> q, Shape shape, const QuantSpec& spec, const ChannelQParams& qp,
                std::span<float> out) {
  detail::with_channel_quantizer<T>("dequantize", spec, qp, shape,
                                    [&](const auto& z) { z.dequantize(q, shape, out); });
}

inline void fake_quantize(std::span<const float> x, Shape shape, const QuantSpec& spec,
                          const ChannelQParams& qp, std::span<float> out,
                          std::span<uint8_t> mask = {}) {
  auto run = [&](const auto& q) { q.fake_quantize(x, shape, out, mask); };
  if (spec.dtype == DType::s8) {
    detail::with_channel_quantizer<int8_t>("fake_quantize", spec, qp, shape, run);
  } else {
    detail::with_channel_quantizer<uint8_t>("fake_quantize", spec, qp, shape, run);
  }
}

}  // namespace sparq
