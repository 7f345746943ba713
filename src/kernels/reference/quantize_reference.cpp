// Scalar reference quantize / dequantize kernels: the definition every SIMD
// kernel is tested against bit for bit. The per-element arithmetic is
// detail::quantize_element / dequantize_element from the public header
// (this folder is compiled without ISA flags, so including inline code is
// safe here, unlike in src/kernels/<isa>/).
#include "kernels/quantize_kernels.hpp"
#include "sparq/quant/quantize.hpp"

namespace sparq::detail {
namespace {

template <class T>
void quantize_run(const float* src, T* dst, std::size_t n, float inv_scale, int32_t zp,
                  int32_t qmin, int32_t qmax) noexcept {
  const float lo = static_cast<float>(qmin - zp), hi = static_cast<float>(qmax - zp);
  for (std::size_t i = 0; i < n; ++i) {
    dst[i] = static_cast<T>(quantize_element(src[i], inv_scale, zp, lo, hi));
  }
}

template <class T>
void dequantize_run(const T* src, float* dst, std::size_t n, float scale, int32_t zp) noexcept {
  for (std::size_t i = 0; i < n; ++i) dst[i] = dequantize_element(src[i], scale, zp);
}

template <class T>
void quantize_tensor(const QuantizeTensorArgs& a) noexcept {
  quantize_run(a.src, static_cast<T*>(a.dst), a.n, a.inv_scale, a.zero_point, a.qmin, a.qmax);
}

template <class T>
void dequantize_tensor(const DequantizeTensorArgs& a) noexcept {
  dequantize_run(static_cast<const T*>(a.src), a.dst, a.n, a.scale, a.zero_point);
}

template <class T>
void quantize_channel(const QuantizeChannelArgs& a) noexcept {
  auto* dst = static_cast<T*>(a.dst);
  for (std::size_t c = 0; c < a.channels; ++c) {
    quantize_run(a.src + c * a.inner, dst + c * a.inner, a.inner, a.inv_scales[c], a.zero_points[c],
                 a.qmin, a.qmax);
  }
}

template <class T>
void dequantize_channel(const DequantizeChannelArgs& a) noexcept {
  const auto* src = static_cast<const T*>(a.src);
  for (std::size_t c = 0; c < a.channels; ++c) {
    dequantize_run(src + c * a.inner, a.dst + c * a.inner, a.inner, a.scales[c], a.zero_points[c]);
  }
}

}  // namespace

SPARQ_DEFINE_QUANTIZE_KERNELS(reference, int8_t, uint8_t)

}  // namespace sparq::detail
