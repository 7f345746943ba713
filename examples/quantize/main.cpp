// sparq quantization demo.
//
// A [64, 256] weight matrix whose rows have very different magnitudes (as in
// real layers: row standard deviations spread over two decades), quantized
// to int8 symmetric per tensor and per output channel (axis 0), and a
// ReLU-like activation tensor quantized to uint8 asymmetric per tensor. For
// each: the parameters, the reconstruction error (max |error|, RMSE, SQNR)
// and the storage size. The data are synthetic (fixed seed), so the output
// is reproducible.
#include <sparq/sparq.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace {

struct ErrorStats {
  double max_abs = 0, rmse = 0, sqnr_db = 0;
};

ErrorStats error_stats(const std::vector<float>& x, const std::vector<float>& y) {
  double err2 = 0, sig2 = 0;
  ErrorStats s;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double e = static_cast<double>(x[i]) - y[i];
    s.max_abs = std::max(s.max_abs, std::fabs(e));
    err2 += e * e;
    sig2 += static_cast<double>(x[i]) * x[i];
  }
  s.rmse = std::sqrt(err2 / static_cast<double>(x.size()));
  s.sqnr_db = 10.0 * std::log10(sig2 / err2);
  return s;
}

void print_stats(const char* what, const ErrorStats& s, std::size_t fp32_bytes,
                 std::size_t q_bytes) {
  std::printf("  %-26s max|err| %.6f  RMSE %.6f  SQNR %.1f dB  size %zu -> %zu bytes (%.2fx)\n",
              what, s.max_abs, s.rmse, s.sqnr_db, fp32_bytes, q_bytes,
              static_cast<double>(fp32_bytes) / static_cast<double>(q_bytes));
}

}  // namespace

int main() {
  std::printf("sparq quantization demo (active ISA: %s)\n\n",
              std::string(sparq::isa_name(sparq::active_isa())).c_str());
  constexpr int64_t rows = 64, cols = 256;
  const std::vector<int64_t> shape = {rows, cols};
  std::mt19937 rng(2024);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    const float row_std = std::pow(10.0f, -2.0f + 2.0f * static_cast<float>(r) / (rows - 1));
    for (int64_t c = 0; c < cols; ++c) w[r * cols + c] = row_std * normal(rng);
  }

  // --- weights, int8 symmetric per tensor
  sparq::QuantSpec spec;  // s8, symmetric, per tensor
  const auto [wmin, wmax] = std::minmax_element(w.begin(), w.end());
  const sparq::QParams qp = sparq::compute_qparams(*wmin, *wmax, spec);
  std::vector<int8_t> q(w.size());
  std::vector<float> back(w.size());
  sparq::quantize<int8_t>(w, shape, spec, qp, q);
  sparq::dequantize<int8_t>(q, shape, spec, qp, back);
  std::printf("weights [%lld x %lld], range [%.4f, %.4f]\n", static_cast<long long>(rows),
              static_cast<long long>(cols), *wmin, *wmax);
  std::printf("  per tensor s8 symmetric:   scale %.6g  zero point %d\n", qp.scale, qp.zero_point);
  const std::size_t fp32_bytes = w.size() * sizeof(float);
  print_stats("per tensor:", error_stats(w, back), fp32_bytes, q.size() + sizeof(sparq::QParams));

  // --- weights, int8 symmetric per output channel (axis 0)
  sparq::QuantSpec cspec = spec;
  cspec.granularity = sparq::Granularity::per_channel;
  cspec.axis = 0;
  std::vector<float> mins(rows), maxs(rows);
  for (int64_t r = 0; r < rows; ++r) {
    const auto [lo, hi] = std::minmax_element(w.begin() + r * cols, w.begin() + (r + 1) * cols);
    mins[r] = *lo;
    maxs[r] = *hi;
  }
  const sparq::ChannelQParams cq = sparq::compute_qparams(mins, maxs, cspec);
  sparq::quantize<int8_t>(w, shape, cspec, cq, q);
  sparq::dequantize<int8_t>(q, shape, cspec, cq, back);
  const auto [smin, smax] = std::minmax_element(cq.scales.begin(), cq.scales.end());
  std::printf(
      "  per channel s8 symmetric:  %zu scales in [%.6g, %.6g] (row 0: %.6g, row %lld: "
      "%.6g), zero points 0\n",
      cq.size(), *smin, *smax, cq.scales.front(), static_cast<long long>(rows - 1),
      cq.scales.back());
  print_stats("per channel:", error_stats(w, back), fp32_bytes,
              q.size() + cq.size() * (sizeof(float) + sizeof(int32_t)));

  // --- activations, uint8 asymmetric per tensor (ReLU output plus a bias)
  std::vector<float> act(4096);
  for (auto& a : act) a = std::max(0.0f, 1.5f * normal(rng)) - 0.25f;
  sparq::QuantSpec aspec;
  aspec.dtype = sparq::DType::u8;
  aspec.scheme = sparq::Scheme::asymmetric;
  const auto [amin, amax] = std::minmax_element(act.begin(), act.end());
  const sparq::QParams aq = sparq::compute_qparams(*amin, *amax, aspec);
  std::vector<uint8_t> qa(act.size());
  std::vector<float> aback(act.size());
  const std::vector<int64_t> ashape = {static_cast<int64_t>(act.size())};
  sparq::quantize<uint8_t>(act, ashape, aspec, aq, qa);
  sparq::dequantize<uint8_t>(qa, ashape, aspec, aq, aback);
  std::printf("\nactivations [%zu], range [%.4f, %.4f]\n", act.size(), *amin, *amax);
  std::printf("  per tensor u8 asymmetric:  scale %.6g  zero point %d\n", aq.scale, aq.zero_point);
  print_stats("per tensor:", error_stats(act, aback), act.size() * sizeof(float),
              qa.size() + sizeof(sparq::QParams));

  // Special values are defined: NaN -> zero point, +-Inf saturate.
  const std::vector<float> special = {NAN, INFINITY, -INFINITY};
  std::vector<uint8_t> qs(3);
  sparq::quantize<uint8_t>(special, std::vector<int64_t>{3}, aspec, aq, qs);
  std::printf("  NaN, +Inf, -Inf -> %d, %d, %d\n", qs[0], qs[1], qs[2]);
  return 0;
}
