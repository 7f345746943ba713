// Quantization specs and the quantization parameters (scale, zero point)
// derived from an observed range.
//
// Affine quantization maps a real value x to an integer q:
//     q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax)
//     x ~ (q - zero_point) * scale
//
// compute_qparams() follows PyTorch's observers (`_calculate_qparams` in
// torch/ao/quantization/observer.py) so that a model calibrated with sparq
// and with PyTorch gets the same parameters from the same range. All
// arithmetic is float32, as in PyTorch:
//
//   min_neg = min(min, 0)            // the range always contains 0, so that
//   max_pos = max(max, 0)            // zero (padding, ReLU) is exact
//   symmetric:
//     amax  = max(-min_neg, max_pos)
//     scale = max(amax / ((qmax - qmin) / 2), eps)
//     zero_point = 0 for s8; for u8 128, or (qmin + qmax) / 2 (integer
//                  division) when quant_min/quant_max are customised
//   asymmetric:
//     scale = max((max_pos - min_neg) / (qmax - qmin), eps)
//     zero_point = clamp(qmin - round_half_even(min_neg / scale), qmin, qmax)
//
// The integer range [qmin, qmax] of a spec is, in order of precedence:
//   quant_min/quant_max if both are set (must lie inside the storage type
//       and contain 0, as PyTorch's _validate_qmin_qmax requires); with
//       reduce_range both are halved by floor division, as PyTorch's
//       calculate_qmin_qmax does ([-8, 7] -> [-4, 3], [0, 15] -> [0, 7]);
//   s8: [-128, 127], or [-127, 127] with narrow_range, or [-64, 63] with
//       reduce_range (7 bits: keeps u8*s8 pair sums inside int16 on CPUs
//       without VNNI, as PyTorch's fbgemm backend does);
//   u8: [0, 255], or [0, 127] with reduce_range (narrow_range is [1, 255]).
// narrow_range is the custom range [-127, 127] (s8) or [1, 255] (u8) and
// reduce_range halves it as it halves a custom range, which gives the same
// [-64, 63] / [0, 127] as without narrow_range.
//
// Configurations that PyTorch accepts but quantizes wrongly, or that PyTorch
// refuses, are sparq::Error from QuantSpec::validate() (tested case by case
// against torch 1.13 in tests/unit/qparams_pytorch_test.cpp):
//   * u8 symmetric + reduce_range (with or without a custom range): the
//     zero point 128 lies outside the range [0, 127], so every positive
//     value would clamp to 127 and dequantize to -scale. PyTorch's MinMax
//     observers refuse it (NotImplementedError); its HistogramObserver
//     accepts it and quantizes that way;
//   * a custom range that does not contain 0 (PyTorch: AssertionError);
//   * narrow_range together with a custom range (ambiguous: which wins?);
//   * a custom range that reduce_range halves to a single value.
// Non-finite or inverted ranges are errors (observers exclude NaN/Inf
// before they get here).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <vector>

#include "sparq/error.hpp"

namespace sparq {

/// Integer storage type of quantized values. The quantizer templates take the
/// C++ type (int8_t, uint8_t); this enum is the run-time twin, used by specs,
/// files and the run-time front ends. A 4-bit type can be added here and in
/// QuantTraits without touching the rest.
enum class DType : uint8_t { s8, u8 };

enum class Scheme : uint8_t { symmetric, asymmetric };
enum class Granularity : uint8_t { per_tensor, per_channel };

/// The integer range of a storage type, for templates.
template <class T>
struct QuantTraits;
template <>
struct QuantTraits<int8_t> {
  static constexpr DType dtype = DType::s8;
  static constexpr int32_t lowest = -128, highest = 127;
};
template <>
struct QuantTraits<uint8_t> {
  static constexpr DType dtype = DType::u8;
  static constexpr int32_t lowest = 0, highest = 255;
};

constexpr int32_t dtype_lowest(DType t) { return t == DType::s8 ? -128 : 0; }
constexpr int32_t dtype_highest(DType t) { return t == DType::s8 ? 127 : 255; }
constexpr const char* dtype_name(DType t) { return t == DType::s8 ? "s8" : "u8"; }

/// How to quantize a tensor.
struct QuantSpec {
  DType dtype = DType::s8;
  Scheme scheme = Scheme::symmetric;
  Granularity granularity = Granularity::per_tensor;
  int axis = 0;  ///< channel axis for per_channel; negative counts from the end
  bool narrow_range = false;
  bool reduce_range = false;
  std::optional<int32_t> quant_min{}, quant_max{};    ///< custom range (both or neither)
  float eps = std::numeric_limits<float>::epsilon();  ///< smallest scale (PyTorch default)

  /// Validates the spec; throws sparq::Error naming the bad field.
  void validate() const {
    // A value cast from an int outside the enum would select no branch below.
    if (static_cast<unsigned>(dtype) > 1 || static_cast<unsigned>(scheme) > 1 ||
        static_cast<unsigned>(granularity) > 1) {
      detail::fail("QuantSpec: dtype ({}), scheme ({}) and granularity ({}) must each be 0 or 1",
                   static_cast<unsigned>(dtype), static_cast<unsigned>(scheme),
                   static_cast<unsigned>(granularity));
    }
    if (quant_min.has_value() != quant_max.has_value()) {
      detail::fail("QuantSpec: quant_min and quant_max must be set together (got only {})",
                   quant_min ? "quant_min" : "quant_max");
    }
    if (quant_min) {
      if (*quant_min < dtype_lowest(dtype) || *quant_max > dtype_highest(dtype) ||
          *quant_min >= *quant_max) {
        detail::fail(
            "QuantSpec: quant_min/quant_max ({}, {}) must satisfy {} <= quant_min < quant_max "
            "<= {} for dtype {}",
            *quant_min, *quant_max, dtype_lowest(dtype), dtype_highest(dtype), dtype_name(dtype));
      }
    }
    if (quant_min && (*quant_min > 0 || *quant_max < 0)) {
      detail::fail(
          "QuantSpec: quant_min/quant_max ({}, {}) must contain 0 (zero must be exactly "
          "representable; PyTorch refuses such a range too)",
          *quant_min, *quant_max);
    }
    if (quant_min && narrow_range) {
      detail::fail(
          "QuantSpec: narrow_range is set together with quant_min/quant_max ({}, {}); expected one "
          "of them (write the narrow range as quant_min/quant_max)",
          *quant_min, *quant_max);
    }
    if (quant_min && reduce_range && qmin() >= qmax()) {
      detail::fail(
          "QuantSpec: reduce_range halves quant_min/quant_max ({}, {}) to ({}, {}); expected a "
          "range of at least two values",
          *quant_min, *quant_max, qmin(), qmax());
    }
    if (dtype == DType::u8 && scheme == Scheme::symmetric && reduce_range) {
      detail::fail(
          "QuantSpec: dtype u8 with scheme symmetric and reduce_range = true: the symmetric zero "
          "point 128 lies outside the reduced range [0, 127] (PyTorch's MinMaxObserver refuses "
          "it: \"Cannot reduce range for symmetric quantization for quint8\"; its "
          "HistogramObserver accepts it and maps every positive value to -scale); expected "
          "scheme asymmetric, dtype s8, or reduce_range = false");
    }
    if (!(eps > 0.0f) || !std::isfinite(eps)) {
      detail::fail("QuantSpec: eps ({}) must be a finite value > 0", eps);
    }
  }

  int32_t qmin() const {
    if (quant_min) return reduce_range ? floor_half(*quant_min) : *quant_min;
    if (dtype == DType::s8) return reduce_range ? -64 : (narrow_range ? -127 : -128);
    return narrow_range && !reduce_range ? 1 : 0;
  }
  int32_t qmax() const {
    if (quant_max) return reduce_range ? floor_half(*quant_max) : *quant_max;
    if (dtype == DType::s8) return reduce_range ? 63 : 127;
    return reduce_range ? 127 : 255;
  }

 private:
  // Python's q // 2 (floor), which PyTorch applies to a custom range.
  static constexpr int32_t floor_half(int32_t q) { return q >= 0 ? q / 2 : -((1 - q) / 2); }
};

/// Per-tensor quantization parameters.
struct QParams {
  float scale = 1.0f;
  int32_t zero_point = 0;
  friend bool operator==(const QParams&, const QParams&) = default;
};

/// Per-channel quantization parameters: one scale and zero point per index
/// along `axis`.
struct ChannelQParams {
  std::vector<float> scales;
  std::vector<int32_t> zero_points;
  int axis = 0;
  std::size_t size() const { return scales.size(); }
  QParams operator[](std::size_t c) const { return {scales[c], zero_points[c]}; }
  friend bool operator==(const ChannelQParams&, const ChannelQParams&) = default;
};

namespace detail {

/// Rounds half to even (the default IEEE mode, as torch.round and
/// std::nearbyint do) without depending on the current rounding mode.
inline float round_half_even(float x) {
  const float r = std::round(x);  // half away from zero
  if (std::fabs(x - std::trunc(x)) == 0.5f) return 2.0f * std::round(x * 0.5f);
  return r;
}

inline QParams qparams_from_checked_range(float min, float max, const QuantSpec& spec) {
  const int32_t qmin = spec.qmin(), qmax = spec.qmax();
  const float min_neg = std::min(min, 0.0f);
  const float max_pos = std::max(max, 0.0f);
  QParams qp;
  if (spec.scheme == Scheme::symmetric) {
    const float amax = std::max(-min_neg, max_pos);
    qp.scale = std::max(amax / (static_cast<float>(qmax - qmin) / 2.0f), spec.eps);
    if (spec.dtype == DType::u8) {
      qp.zero_point = (spec.quant_min || spec.quant_max) ? (qmin + qmax) / 2 : 128;
    }
  } else {
    qp.scale = std::max((max_pos - min_neg) / static_cast<float>(qmax - qmin), spec.eps);
    const float zp = static_cast<float>(qmin) - round_half_even(min_neg / qp.scale);
    qp.zero_point =
        static_cast<int32_t>(std::clamp(zp, static_cast<float>(qmin), static_cast<float>(qmax)));
  }
  if (!std::isfinite(qp.scale)) {
    // max_pos - min_neg overflows float for ranges near +-FLT_MAX.
    fail("compute_qparams: range [{}, {}] is too wide: its scale is not a finite float", min, max);
  }
  return qp;
}

inline void check_range(float min, float max, const char* who) {
  if (!std::isfinite(min) || !std::isfinite(max)) {
    fail("{}: range [{}, {}] must be finite (exclude NaN/Inf before computing qparams)", who, min,
         max);
  }
  if (min > max) fail("{}: min ({}) must be <= max ({})", who, min, max);
}

}  // namespace detail

/// Per-tensor qparams from an observed range; see the formula at the top of
/// this file. Throws sparq::Error for a non-finite range, min > max or a bad
/// spec.
inline QParams compute_qparams(float min, float max, const QuantSpec& spec = {}) {
  spec.validate();
  detail::check_range(min, max, "compute_qparams");
  return detail::qparams_from_checked_range(min, max, spec);
}

/// Per-channel qparams: channel c gets compute_qparams(mins[c], maxs[c]).
inline ChannelQParams compute_qparams(std::span<const float> mins, std::span<const float> maxs,
                                      const QuantSpec& spec) {
  spec.validate();
  if (mins.size() != maxs.size()) {
    detail::fail("compute_qparams: mins has {} channels but maxs has {}; expected equal sizes",
                 mins.size(), maxs.size());
  }
  if (mins.empty()) detail::fail("compute_qparams: mins/maxs are empty; expected >= 1 channel");
  ChannelQParams out;
  out.axis = spec.axis;
  out.scales.resize(mins.size());
  out.zero_points.resize(mins.size());
  for (std::size_t c = 0; c < mins.size(); ++c) {
    detail::check_range(mins[c], maxs[c], "compute_qparams (per channel)");
    const QParams qp = detail::qparams_from_checked_range(mins[c], maxs[c], spec);
    out.scales[c] = qp.scale;
    out.zero_points[c] = qp.zero_point;
  }
  return out;
}

}  // namespace sparq
