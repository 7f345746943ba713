// Validation helpers and the dispatched bulk loops behind
// include/sparq/quant/quantize.hpp. The kernel table is looked up once per
// call; the loops here only walk [outer] x [channels] and hand contiguous
// runs to the kernels.
#include "sparq/quant/quantize.hpp"

#include <cmath>
#include <vector>

#include "kernels/quantize_kernels.hpp"
#include "sparq/isa.hpp"
#include "util/checked_size.hpp"

namespace sparq::detail {
namespace {

std::string channel_suffix(std::size_t channel) {
  return channel == SIZE_MAX ? std::string() : fmt::format("[{}]", channel);
}

// Below this many elements per channel run, the per-element parameters are
// expanded so that the kernel's vectorised inner == 1 path handles the whole
// [channels * inner] row at once instead of a scalar-sized run per channel.
constexpr std::size_t kExpandBelowInner = 16;
constexpr std::size_t kMaxExpandedRow = std::size_t{1} << 16;

}  // namespace

std::size_t checked_element_count(Shape shape, std::size_t n, const char* who) {
  // Checked product (util/checked_size.hpp): a shape like {2^62 + 1, 4}
  // would otherwise wrap to 4 elements and pass.
  const auto count = static_cast<std::size_t>(checked_count(shape, who, /*min_extent=*/1));
  if (count != n) {
    fail("{}: shape has {} elements but the input has {}; expected equal", who, count, n);
  }
  return count;
}

int normalize_axis(int axis, std::size_t rank, const char* who) {
  const auto r = static_cast<int>(rank);
  if (axis < -r || axis >= r) {
    fail("{}: axis {} is out of range for a tensor of rank {}; expected {} <= axis < {}", who, axis,
         rank, -r, r);
  }
  return axis < 0 ? axis + r : axis;
}

ChannelLayout channel_layout(Shape shape, std::size_t n, int axis, const char* who) {
  checked_element_count(shape, n, who);
  const int a = normalize_axis(axis, shape.size(), who);
  ChannelLayout l;
  for (int d = 0; d < a; ++d) l.outer *= static_cast<std::size_t>(shape[d]);
  l.channels = static_cast<std::size_t>(shape[a]);
  for (std::size_t d = a + 1; d < shape.size(); ++d) l.inner *= static_cast<std::size_t>(shape[d]);
  return l;
}

void check_scale(float scale, const char* who, std::size_t channel) {
  if (!std::isfinite(scale) || !(scale > 0.0f) || !std::isfinite(1.0f / scale)) {
    fail("{}: scale{} ({}) must be finite, > 0 and have a finite reciprocal", who,
         channel_suffix(channel), scale);
  }
}

void check_zero_point(int32_t zero_point, DType dtype, const char* who, std::size_t channel) {
  if (zero_point < dtype_lowest(dtype) || zero_point > dtype_highest(dtype)) {
    fail("{}: zero_point{} ({}) must lie in [{}, {}] for dtype {}", who, channel_suffix(channel),
         zero_point, dtype_lowest(dtype), dtype_highest(dtype), dtype_name(dtype));
  }
}

void check_qparam(float scale, int32_t zero_point, DType dtype, bool zero_must_be_0,
                  std::size_t channel) {
  check_scale(scale, "Quantizer", channel);
  check_zero_point(zero_point, dtype, "Quantizer", channel);
  if (zero_must_be_0 && zero_point != 0) {
    fail("Quantizer: {} ({}) must be 0 for symmetric {}",
         channel == SIZE_MAX ? std::string("zero_point") : fmt::format("zero_points[{}]", channel),
         zero_point, dtype_name(dtype));
  }
}

void check_qrange(int32_t qmin, int32_t qmax, DType dtype, const char* who) {
  if (qmin < dtype_lowest(dtype) || qmax > dtype_highest(dtype) || qmin >= qmax) {
    fail("{}: [qmin, qmax] = [{}, {}]; expected {} <= qmin < qmax <= {} for dtype {}", who, qmin,
         qmax, dtype_lowest(dtype), dtype_highest(dtype), dtype_name(dtype));
  }
}

void quantize_tensor(DType dtype, const float* src, void* dst, std::size_t n, float inv_scale,
                     int32_t zp, int32_t qmin, int32_t qmax) {
  const auto& k = quantize_kernels(active_isa());
  (dtype == DType::s8 ? k.quantize_s8 : k.quantize_u8)({src, dst, n, inv_scale, zp, qmin, qmax});
}

void dequantize_tensor(DType dtype, const void* src, float* dst, std::size_t n, float scale,
                       int32_t zp) {
  const auto& k = quantize_kernels(active_isa());
  (dtype == DType::s8 ? k.dequantize_s8 : k.dequantize_u8)({src, dst, n, scale, zp});
}

namespace {

// The per-channel parameters a kernel call reads: as given (`channels`
// runs of `inner`), or, below kExpandBelowInner, expanded to one entry per
// element of the [channels * inner] row and read with inner == 1.
class ChannelParams {
 public:
  ChannelParams(ChannelLayout l, const float* scales, const int32_t* zero_points)
      : scales(scales), zero_points(zero_points), channels(l.channels), inner(l.inner) {
    const std::size_t row = l.channels * l.inner;
    if (l.inner > 1 && l.inner < kExpandBelowInner && row <= kMaxExpandedRow) {
      expanded_scales_.resize(row);
      expanded_zero_points_.resize(row);
      for (std::size_t i = 0; i < row; ++i) {
        expanded_scales_[i] = scales[i / l.inner];
        expanded_zero_points_[i] = zero_points[i / l.inner];
      }
      this->scales = expanded_scales_.data();
      this->zero_points = expanded_zero_points_.data();
      channels = row;
      inner = 1;
    }
  }
  const float* scales;
  const int32_t* zero_points;
  std::size_t channels, inner;

 private:
  std::vector<float> expanded_scales_;
  std::vector<int32_t> expanded_zero_points_;
};

}  // namespace

void quantize_channels(DType dtype, const float* src, void* dst, ChannelLayout l,
                       const float* inv_scales, const int32_t* zero_points, int32_t qmin,
                       int32_t qmax) {
  const auto& k = quantize_kernels(active_isa());
  const auto fn = dtype == DType::s8 ? k.quantize_channel_s8 : k.quantize_channel_u8;
  auto* out = static_cast<uint8_t*>(dst);  // one byte per element for s8 and u8
  const std::size_t row = l.channels * l.inner;
  const ChannelParams p(l, inv_scales, zero_points);
  for (std::size_t o = 0; o < l.outer; ++o) {
    fn({src + o * row, out + o * row, p.channels, p.inner, p.scales, p.zero_points, qmin, qmax});
  }
}

void dequantize_channels(DType dtype, const void* src, float* dst, ChannelLayout l,
                         const float* scales, const int32_t* zero_points) {
  const auto& k = quantize_kernels(active_isa());
  const auto fn = dtype == DType::s8 ? k.dequantize_channel_s8 : k.dequantize_channel_u8;
  const auto* in = static_cast<const uint8_t*>(src);
  const std::size_t row = l.channels * l.inner;
  const ChannelParams p(l, scales, zero_points);
  for (std::size_t o = 0; o < l.outer; ++o) {
    fn({in + o * row, dst + o * row, p.channels, p.inner, p.scales, p.zero_points});
  }
}

}  // namespace sparq::detail
