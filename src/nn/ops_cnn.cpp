// CNN graph operators of ops.hpp: average pooling (fixed and adaptive) and
// the element-wise activations Hardswish, SiLU and Sigmoid. FP32, NHWC.
// Add and Concat live with the graph (src/nn/graph.cpp).
#include <algorithm>
#include <cmath>

#include "nn/nn_internal.hpp"
#include "sparq/error.hpp"
#include "sparq/nn/ops.hpp"

namespace sparq::nn {

using sparq::detail::fail;

namespace {

// Keeps every index product below int64 overflow for any input that fits in
// memory (the same bound as Conv2d and MaxPool2d).
constexpr int64_t kSizeLimit = int64_t{1} << 24;

// Output length of a pooling window sliding over `in` (PyTorch's floor mode).
int64_t pooled_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, const char* axis) {
  if (in + 2 * pad < kernel) {
    fail("AvgPool2d: input {} {} with padding {} is smaller than the kernel {}", axis, in, pad,
         kernel);
  }
  return (in + 2 * pad - kernel) / stride + 1;
}

}  // namespace

// --------------------------------------------------------------- AvgPool2d
AvgPool2d::AvgPool2d(int64_t kernel_size, int64_t stride, int64_t padding)
    : kernel_h(kernel_size),
      kernel_w(kernel_size),
      stride_h(stride == 0 ? kernel_size : stride),
      stride_w(stride == 0 ? kernel_size : stride),
      pad_h(padding),
      pad_w(padding) {
  validate();
}

void AvgPool2d::validate() const {
  detail::check_pool_window("AvgPool2d", kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w);
}

std::string AvgPool2d::describe() const {
  return fmt::format("AvgPool2d(k{}x{}, s{}x{}, p{}x{}{})", kernel_h, kernel_w, stride_h, stride_w,
                     pad_h, pad_w, count_include_pad ? "" : ", exclude pad");
}

Tensor AvgPool2d::forward(const Tensor& x) const {
  detail::check_nhwc(x.shape, 0, "AvgPool2d");
  validate();
  const int64_t batch = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
  const int64_t oh = pooled_size(h, kernel_h, stride_h, pad_h, "height");
  const int64_t ow = pooled_size(w, kernel_w, stride_w, pad_w, "width");
  Tensor y({batch, oh, ow, c});
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t oy = 0; oy < oh; ++oy) {
      // Taps [y0, y1) of the window lie inside the image. In floor mode a
      // window never reaches past the padding, so PyTorch's divisor with
      // count_include_pad is the whole kernel.
      const int64_t iy = oy * stride_h - pad_h;
      const int64_t y0 = std::max<int64_t>(iy, 0), y1 = std::min(iy + kernel_h, h);
      for (int64_t ox = 0; ox < ow; ++ox) {
        const int64_t ix = ox * stride_w - pad_w;
        const int64_t x0 = std::max<int64_t>(ix, 0), x1 = std::min(ix + kernel_w, w);
        const int64_t divisor = count_include_pad ? kernel_h * kernel_w : (y1 - y0) * (x1 - x0);
        float* dst = y.data.data() + ((b * oh + oy) * ow + ox) * c;
        for (int64_t yy = y0; yy < y1; ++yy) {
          for (int64_t xx = x0; xx < x1; ++xx) {
            const float* src = x.data.data() + ((b * h + yy) * w + xx) * c;
            for (int64_t ch = 0; ch < c; ++ch) dst[ch] += src[ch];
          }
        }
        const auto d = static_cast<float>(divisor);
        for (int64_t ch = 0; ch < c; ++ch) dst[ch] /= d;
      }
    }
  }
  return y;
}

// ------------------------------------------------------- AdaptiveAvgPool2d
std::string AdaptiveAvgPool2d::describe() const {
  return fmt::format("AdaptiveAvgPool2d({}x{})", out_h, out_w);
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) const {
  detail::check_nhwc(x.shape, 0, "AdaptiveAvgPool2d");
  if (out_h < 1 || out_w < 1 || out_h > kSizeLimit || out_w > kSizeLimit) {
    fail("AdaptiveAvgPool2d: output size {}x{} must be in [1, 2^24]", out_h, out_w);
  }
  const int64_t batch = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
  if (h < 1 || w < 1) {
    fail("AdaptiveAvgPool2d: input shape {} must have height and width >= 1",
         shape_to_string(x.shape));
  }
  Tensor y({batch, out_h, out_w, c});
  if (out_h == 1 && out_w == 1) {
    // Global average (ResNet, MobileNet): the image of each batch element is
    // one contiguous run of h * w pixels of c channels.
    const auto divisor = static_cast<float>(h * w);
    for (int64_t b = 0; b < batch; ++b) {
      float* dst = y.data.data() + b * c;
      const float* src = x.data.data() + b * h * w * c;
      for (int64_t p = 0; p < h * w; ++p) {
        for (int64_t ch = 0; ch < c; ++ch) dst[ch] += src[p * c + ch];
      }
      for (int64_t ch = 0; ch < c; ++ch) dst[ch] /= divisor;
    }
    return y;
  }
  // PyTorch's bins: [floor(i * in / out), ceil((i + 1) * in / out)); they
  // overlap when in is not a multiple of out, and repeat pixels when out > in.
  auto bin_start = [](int64_t i, int64_t in, int64_t out) { return i * in / out; };
  auto bin_end = [](int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; };
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t oy = 0; oy < out_h; ++oy) {
      const int64_t y0 = bin_start(oy, h, out_h), y1 = bin_end(oy, h, out_h);
      for (int64_t ox = 0; ox < out_w; ++ox) {
        const int64_t x0 = bin_start(ox, w, out_w), x1 = bin_end(ox, w, out_w);
        float* dst = y.data.data() + ((b * out_h + oy) * out_w + ox) * c;
        for (int64_t yy = y0; yy < y1; ++yy) {
          for (int64_t xx = x0; xx < x1; ++xx) {
            const float* src = x.data.data() + ((b * h + yy) * w + xx) * c;
            for (int64_t ch = 0; ch < c; ++ch) dst[ch] += src[ch];
          }
        }
        const auto divisor = static_cast<float>((y1 - y0) * (x1 - x0));
        for (int64_t ch = 0; ch < c; ++ch) dst[ch] /= divisor;
      }
    }
  }
  return y;
}

// ------------------------------------------------------------- activations
// Each follows PyTorch's CPU formula, operation for operation, so results
// agree to the rounding of exp.
Tensor Hardswish::forward(const Tensor& x) const {
  return detail::map_elements(
      x, [](float v) { return v * std::min(std::max(v + 3.0f, 0.0f), 6.0f) / 6.0f; });
}

Tensor SiLU::forward(const Tensor& x) const {
  return detail::map_elements(x, [](float v) { return v / (1.0f + std::exp(-v)); });
}

Tensor Sigmoid::forward(const Tensor& x) const {
  return detail::map_elements(x, [](float v) { return 1.0f / (1.0f + std::exp(-v)); });
}

}  // namespace sparq::nn
