// Range selection on a histogram: PyTorch's L2 search, TensorRT's entropy
// calibration and percentiles (documented in
// include/sparq/observe/histogram.hpp). Double precision throughout.
#include "observe/range_search.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace sparq::detail {
namespace {

// Integral of x^2 from delta_begin to delta_end, times the density
// (PyTorch `_get_norm`).
inline double norm(double delta_begin, double delta_end, double density) {
  return density * (delta_end * delta_end * delta_end - delta_begin * delta_begin * delta_begin) /
         3.0;
}

}  // namespace

double mse_quantization_error(std::span<const double> hist, double bin_width, int start_bin,
                              int end_bin, int dst_bins) {
  // Transcribes PyTorch's vectorised _compute_quantization_error: source bin
  // j spreads its count uniformly over [b, e) (relative to the start of the
  // first destination bin); each destination bin quantizes to its centre;
  // values beyond the candidate range clamp to the first/last destination
  // bin.
  const double dst_width =
      bin_width * static_cast<double>(end_bin - start_bin + 1) / static_cast<double>(dst_bins);
  if (dst_width == 0.0) return 0.0;
  const double half = dst_width / 2.0;
  const double top = static_cast<double>(dst_bins - 1);
  double total = 0.0;
  for (std::size_t j = 0; j < hist.size(); ++j) {
    if (hist[j] == 0.0) continue;
    const double density = hist[j] / bin_width;
    const double b = (static_cast<double>(j) - start_bin) * bin_width;
    const double e = b + bin_width;
    const double dst_begin = std::clamp(std::floor(b / dst_width), 0.0, top);
    const double dst_end = std::clamp(std::floor(e / dst_width), 0.0, top);
    const double begin_center = (dst_begin + 0.5) * dst_width;
    const double end_center = dst_end * dst_width + half;
    total += norm(b - begin_center, half, density);
    total += (dst_end - dst_begin - 1.0) * norm(-half, half, density);
    total += norm(-half, e - end_center, density);
  }
  return total;
}

std::pair<double, double> mse_search(std::span<const double> hist, double min_val, double max_val,
                                     int dst_bins) {
  // PyTorch HistogramObserver._non_linear_param_search, step for step.
  const int bins = static_cast<int>(hist.size());
  const double bin_width = (max_val - min_val) / bins;
  std::vector<double> csum(hist.size());
  double total = 0.0;
  for (std::size_t j = 0; j < hist.size(); ++j) {
    total += hist[j];
    csum[j] = total;
  }
  const double stepsize = 1e-5;
  double alpha = 0.0, beta = 1.0;
  int start_bin = 0, end_bin = bins - 1;
  double norm_min = std::numeric_limits<double>::infinity();
  while (alpha < beta) {
    const double next_alpha = alpha + stepsize;
    const double next_beta = beta - stepsize;
    int l = start_bin, r = end_bin;
    while (l < end_bin && csum[l] < next_alpha * total) ++l;
    while (r > start_bin && csum[r] > next_beta * total) --r;
    int next_start = start_bin, next_end = end_bin;
    if ((l - start_bin) > (end_bin - r)) {
      next_start = l;
      alpha = next_alpha;
    } else {
      next_end = r;
      beta = next_beta;
    }
    if (next_start == start_bin && next_end == end_bin) continue;
    const double n = mse_quantization_error(hist, bin_width, next_start, next_end, dst_bins);
    if (n > norm_min) break;
    norm_min = n;
    start_bin = next_start;
    end_bin = next_end;
  }
  return {min_val + bin_width * start_bin, min_val + bin_width * (end_bin + 1)};
}

namespace {

// MXNet's _smooth_distribution(p, eps=0.0001): gives every zero entry eps,
// taken evenly from the non-zero ones, so that KL(P || Q) stays finite.
// Returns false when every entry is zero (not a distribution).
bool smooth(std::vector<double>& p, std::size_t n) {
  constexpr double eps = 0.0001;
  std::size_t zeros = 0;
  for (std::size_t j = 0; j < n; ++j) zeros += p[j] == 0.0;
  if (zeros == n) return false;
  const double eps1 = eps * static_cast<double>(zeros) / static_cast<double>(n - zeros);
  for (std::size_t j = 0; j < n; ++j) p[j] += p[j] == 0.0 ? eps : -eps1;
  return true;
}

}  // namespace

std::size_t entropy_search(std::span<const double> abs_hist, int levels) {
  // TensorRT's calibration (GTC 2017 pseudo-code; MXNet's
  // _get_optimal_threshold and TVM are the same loop) on a histogram of |x|
  // whose first bin starts at 0.
  const std::size_t bins = abs_hist.size();
  const auto nl = static_cast<std::size_t>(levels);
  if (bins <= nl) return bins;
  // The zero spike: after a ReLU about half of the values are exactly 0, all
  // in bin 0. Zero is exactly representable (it is the zero point), so that
  // spike costs nothing when quantized, but Q spreads it over the first
  // i / levels bins, which costs KL ~ p0 log(i / levels): growing with the
  // cut, it pulled the threshold of ReLU activations down to about half the
  // MSE range (issue 17). NVIDIA's TensorRT calibrator
  // (pytorch-quantization, calib/histogram.py _compute_amax_entropy) sets
  // bins[0] = bins[1] for that reason; taking the smaller of the two only
  // removes a spike and leaves smooth data (a Gaussian's |x|) as it is.
  std::vector<double> hv(abs_hist.begin(), abs_hist.end());
  hv[0] = std::min(hv[0], hv[1]);
  const std::span<const double> h(hv);
  double total = 0.0;
  for (double c : h) total += c;
  std::vector<double> p(bins), q(bins);
  std::size_t best = bins;
  double best_kl = std::numeric_limits<double>::infinity();
  double kept = 0.0;  // sum of h[0, i)
  for (std::size_t j = 0; j < nl; ++j) kept += h[j];
  for (std::size_t i = nl; i <= bins; ++i) {
    if (i > nl) kept += h[i - 1];
    // P: h[0, i) with the clipped tail added to its last bin.
    std::copy(h.begin(), h.begin() + static_cast<std::ptrdiff_t>(i), p.begin());
    p[i - 1] += total - kept;
    // Q: h[0, i) merged into `levels` groups (the last takes the remainder),
    // each group's sum spread evenly over the bins where P is non-zero.
    const std::size_t merged = i / nl;
    for (std::size_t g = 0; g < nl; ++g) {
      const std::size_t b = g * merged, e = g + 1 == nl ? i : b + merged;
      double sum = 0.0;
      std::size_t nonzero = 0;
      for (std::size_t j = b; j < e; ++j) {
        sum += h[j];
        nonzero += p[j] != 0.0;
      }
      for (std::size_t j = b; j < e; ++j) {
        q[j] = p[j] != 0.0 ? sum / static_cast<double>(nonzero) : 0.0;
      }
    }
    if (!smooth(p, i) || !smooth(q, i)) continue;
    // scipy.stats.entropy(p, q): both normalised, sum p log(p / q).
    double ps = 0.0, qs = 0.0;
    for (std::size_t j = 0; j < i; ++j) {
      ps += p[j];
      qs += q[j];
    }
    double kl = 0.0;
    for (std::size_t j = 0; j < i; ++j) {
      const double pn = p[j] / ps;
      kl += pn * std::log(pn / (q[j] / qs));
    }
    if (kl < best_kl) {
      best_kl = kl;
      best = i;
    }
  }
  return best;
}

double histogram_quantile(std::span<const double> hist, double first_edge, double width,
                          double rank) {
  double below = 0.0;
  std::size_t last_nonempty = 0;
  for (std::size_t j = 0; j < hist.size(); ++j) {
    if (hist[j] == 0.0) continue;
    last_nonempty = j;
    if (below + hist[j] >= rank) {
      const double f = std::clamp((rank - below) / hist[j], 0.0, 1.0);
      return first_edge + (static_cast<double>(j) + f) * width;
    }
    below += hist[j];
  }
  return first_edge + static_cast<double>(last_nonempty + 1) * width;
}

}  // namespace sparq::detail
