// Scalar element-wise kernels: the definitions the SIMD kernels are tested
// against (elementwise_kernels.hpp), written with the standard library's
// erf, tanh and exp, and the portable path on every CPU without a SIMD table
// (ARM included).
#include <algorithm>
#include <cmath>
#include <numbers>

#include "kernels/elementwise_kernels.hpp"

namespace sparq::detail {

void exp_f32__reference(const float* x, float* y, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

void tanh_f32__reference(const float* x, float* y, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
}

void gelu_erf_f32__reference(const float* x, float* y, std::size_t n) noexcept {
  constexpr auto inv_sqrt2 = static_cast<float>(1.0 / std::numbers::sqrt2);
  for (std::size_t i = 0; i < n; ++i) y[i] = x[i] * 0.5f * (1.0f + std::erf(x[i] * inv_sqrt2));
}

void gelu_tanh_f32__reference(const float* x, float* y, std::size_t n) noexcept {
  // torch's approximate='tanh': kBeta = sqrt(2/pi), kKappa = 0.044715.
  constexpr auto beta = static_cast<float>(std::numbers::sqrt2 * std::numbers::inv_sqrtpi);
  for (std::size_t i = 0; i < n; ++i) {
    const float v = x[i];
    y[i] = 0.5f * v * (1.0f + std::tanh(beta * (v + 0.044715f * v * v * v)));
  }
}

void softmax_rows_f32__reference(float* x, std::size_t rows, std::size_t n, float scale,
                                 const float* bias) noexcept {
  for (std::size_t r = 0; r < rows; ++r) {
    float* row = x + r * n;
    for (std::size_t j = 0; j < n; ++j) row[j] = row[j] * scale + (bias ? bias[j] : 0.0f);
    const float max = *std::max_element(row, row + n);
    double sum = 0.0;
    for (std::size_t j = 0; j < n; ++j) {
      row[j] = std::exp(row[j] - max);
      sum += row[j];
    }
    const auto inv = static_cast<float>(1.0 / sum);
    for (std::size_t j = 0; j < n; ++j) row[j] *= inv;
  }
}

void layer_norm_rows_f32__reference(const LayerNormRowsArgs& a) noexcept {
  for (std::size_t r = 0; r < a.rows; ++r) {
    const float* in = a.x + r * a.n;
    float* out = a.y + r * a.n;
    double mean = 0.0;
    for (std::size_t j = 0; j < a.n; ++j) mean += in[j];
    mean /= static_cast<double>(a.n);
    double var = 0.0;
    for (std::size_t j = 0; j < a.n; ++j) var += (in[j] - mean) * (in[j] - mean);
    var /= static_cast<double>(a.n);
    const double rstd = 1.0 / std::sqrt(var + static_cast<double>(a.eps));
    for (std::size_t j = 0; j < a.n; ++j) {
      out[j] = static_cast<float>((in[j] - mean) * rstd * a.weight[j] + a.bias[j]);
    }
  }
}

}  // namespace sparq::detail
