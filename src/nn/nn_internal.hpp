// Internal helpers shared by the nn sources (not installed).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "sparq/error.hpp"
#include "sparq/nn/layers.hpp"
#include "sparq/nn/quantized.hpp"

namespace sparq::nn::detail {

/// Checks a rank-4 NHWC input against a layer's channel count.
inline void check_nhwc(const std::vector<int64_t>& shape, int64_t channels, const char* who) {
  if (shape.size() != 4 || (channels > 0 && shape[3] != channels)) {
    sparq::detail::fail("{}: input shape {} must be NHWC [batch][height][width][{}]", who,
                        shape_to_string(shape), channels > 0 ? std::to_string(channels) : "C");
  }
}

/// im2col for one group of an NHWC convolution: row (b, oy, ox) of `out`
/// (ld = patch) holds the (kh, kw, c) patch of channels [c0, c0 + cg);
/// positions in the padding get `pad` (the quantized zero for u8).
template <class T>
void im2col(const T* x, int64_t batch, int64_t h, int64_t w, int64_t c, const Conv2dGeometry& g,
            int64_t c0, int64_t cg, int64_t oh, int64_t ow, T pad, T* out) {
  const int64_t patch = g.kernel_h * g.kernel_w * cg;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t oy = 0; oy < oh; ++oy) {
      for (int64_t ox = 0; ox < ow; ++ox) {
        T* row = out + ((b * oh + oy) * ow + ox) * patch;
        for (int64_t ky = 0; ky < g.kernel_h; ++ky) {
          const int64_t iy = oy * g.stride_h - g.pad_h + ky * g.dilation_h;
          for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
            const int64_t ix = ox * g.stride_w - g.pad_w + kx * g.dilation_w;
            T* dst = row + (ky * g.kernel_w + kx) * cg;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) {
              std::fill(dst, dst + cg, pad);
            } else {
              const T* src = x + ((b * h + iy) * w + ix) * c + c0;
              std::copy(src, src + cg, dst);
            }
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

}  // namespace sparq::nn::detail
