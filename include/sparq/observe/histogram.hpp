// HistogramObserver: a histogram of everything observed, and four ways to
// choose the quantization range from it.
//
// The grid (how the range grows and what re-binning means)
// ----------------------------------------------------------
// The histogram has config().bins bins of width w = 2^e (a power of two)
// anchored at zero: bin i covers [(k0 + i) * w, (k0 + i + 1) * w). The value x
// falls in bin floor(x * 2^-e) - k0 (computed in float; multiplying by a power
// of two is exact, so this is exactly floor(x / w) for all but subnormal
// products). For the finite range [min, max] seen so far, e is the smallest
// integer such that
//   (a) floor(max / w) - floor(min / w) <= bins - 1   (everything fits),
//   (b) w >= 2^(E - 23) where max(|min|, |max|) < 2^E  (at most 2^23 bins
//       from zero to the largest value: bin numbers are exact in float),
//   (c) e >= -126                                      (2^-e is a float),
// and k0 = floor(min / w). When a batch extends the range, e can only grow
// (each condition is monotone in the range) and each old bin merges whole
// into one new bin: old bin k0 + i goes to floor((k0 + i) / 2^(e' - e)) - k0'.
// Re-binning is therefore exact: no count is split or interpolated, so
//   * the histogram after any sequence of batches (or of merges of observers
//     fed any partition of the data, in any order) is exactly the histogram
//     of all the data on the grid of its global [min, max];
//   * at least about bins / 2 bins span [min, max] (halving w would break
//     (a)), unless (b) holds them back, which only happens for ranges so
//     narrow relative to their magnitude that each bin holds one or two
//     distinct float values anyway.
// PyTorch's HistogramObserver instead re-bins onto the new exact [min, max]
// assuming a uniform density inside each old bin (`_upscale_histogram`);
// that smears counts a little at every growth and depends on the order of
// the batches. The price of the exact grid is up to 2x coarser bins.
//
// Range selection (RangeMethod)
// -----------------------------
// All methods return a range inside the observed [min, max]; qparams()
// passes it to compute_qparams() with config().spec.
//   minmax      [min, max] exactly as observed.
//   mse         PyTorch HistogramObserver._non_linear_param_search: starting
//               from the full histogram, repeatedly drop the lighter tail by
//               quantile steps of 1e-5 and keep going while the L2
//               quantization error (_compute_quantization_error: each source
//               bin's density integrated against the 2^bits destination bins:
//               256 as in PyTorch, whatever reduce_range or a custom range)
//               decreases. The search runs on the bins between the first and last non-empty one
//               (PyTorch's histogram always spans exactly [min, max]); grids above 8192 such bins
//               are first coarsened by exact pairwise merging.
//   entropy     TensorRT's KL-divergence calibration ("8-bit Inference with
//               TensorRT", GTC 2017) as re-implemented in the open by MXNet
//               (contrib/quantization.py `_get_optimal_threshold`, also in
//               TVM): on the histogram of |x| (folded exactly: the grid is
//               anchored at 0; merged pairwise, exactly, to at most
//               min(bins, 8192) bins to bound the O(bins^2) cost), for each
//               candidate cut i >= L bins: P = bins [0, i) with the clipped
//               tail added to the last bin; Q = the same bins merged into L
//               groups (the last takes the remainder) and spread back evenly
//               over the bins where P is non-zero; both smoothed as MXNet's
//               `_smooth_distribution` (zero entries get 1e-4, taken from the
//               others) so that cuts in empty regions stay comparable. The cut
//               with the smallest KL(P || Q) gives T = i * w (first one on
//               ties). L = 128 for 8 bits (half of qmax - qmin + 1), or all
//               qmax - qmin + 1 levels when the data are one-sided (min >= 0
//               or max <= 0) and the spec is asymmetric (then every level
//               lands on that side). The range is [-T, T] intersected with
//               [min, max]. One refinement, from NVIDIA's own calibrator
//               (pytorch-quantization `_compute_amax_entropy`: bins[0] =
//               bins[1]): bin 0 of |x| is lowered to bin 1's count. After a
//               ReLU half the values are exactly 0; zero quantizes exactly,
//               but Q would spread that spike over the first i / L bins at a
//               KL cost growing with the cut, which clipped ReLU outputs to
//               about half their MSE range (issue 17).
//   automatic   each of the four methods here, keeping the range with the
//               largest SQNR (automatic_choice(); nn::Calibrator measures on
//               held-out rows instead of the histogram).
//   percentile  two-sided: the (100 - p)th and pth percentiles of the values;
//               one-sided: the pth percentile T of |x| and [-T, T] intersected
//               with [min, max]. Percentiles interpolate linearly inside the
//               bin that holds them (uniform density within a bin), so they
//               are within one bin width of the exact sample percentile.
//
// Performance: observe() reads each value once (one fused pass computes
// min/max, NaN/Inf counts and bins with SIMD; the increments go to four
// sub-histograms to avoid store-forwarding stalls). A batch that moves the
// grid is binned a second time. The first batch takes one extra min/max pass.
// Memory: bins 64-bit counts + 4 (bins + 1) 32-bit counts during observe().
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sparq/observe/observer.hpp"

namespace sparq {

/// A read-only view of a HistogramObserver's state; `counts` points into the
/// observer and is valid until its next observe(), merge() or destruction.
struct HistogramView {
  std::span<const uint64_t> counts;  ///< bins counts
  int exponent = 0;                  ///< bin width = 2^exponent
  int64_t k0 = 0;                    ///< bin i covers [(k0+i) w, (k0+i+1) w)
  float min = 0.0f, max = 0.0f;      ///< observed finite range
  double width() const;              ///< 2^exponent
  double edge(std::size_t i) const;  ///< left edge of bin i: (k0 + i) * width()
};

class HistogramObserver : public ObserverBase<HistogramObserver> {
 public:
  /// config.kind must be ObserverKind::histogram.
  explicit HistogramObserver(const ObserverConfig& config);
  explicit HistogramObserver(const QuantSpec& spec = {}, RangeMethod method = RangeMethod::mse,
                             int bins = 2048);

  using Observer::observe;
  void observe(std::span<const float> data, std::span<const int64_t> shape) override;
  QParams qparams() const override;
  std::pair<float, float> range() const override { return range(config_.method); }
  /// The range another method would choose from the same histogram (the
  /// percentile settings come from config()).
  std::pair<float, float> range(RangeMethod method) const;
  void merge(const Observer& other) override;
  void save(const std::filesystem::path& file) const override;

  /// RangeMethod::automatic on this observer alone: of minmax, mse, entropy
  /// and percentile, the method whose range (through compute_qparams with
  /// config().spec) quantizes the histogram best, each bin's count placed at
  /// its centre; `sqnr_db` is that SQNR (+inf for no error). Ties go to the
  /// earlier method in that order. nn::Calibrator instead measures the
  /// candidates on held-out calibration rows.
  struct AutomaticChoice {
    RangeMethod method = RangeMethod::minmax;
    double sqnr_db = 0.0;
  };
  AutomaticChoice automatic_choice() const;

  /// True once a finite value was observed.
  bool has_range() const { return !counts_.empty(); }
  /// The histogram (throws sparq::Error before the first finite value).
  HistogramView histogram() const;

 private:
  friend struct ObserverIo;
  /// Moves the counts to the grid of [lo, hi] (which contains the current
  /// range); exact (see the top of this file).
  void regrid(float lo, float hi);

  std::vector<uint64_t> counts_;  // empty until the first finite value
  int exponent_ = 0;
  int64_t k0_ = 0;
  float min_ = 0.0f, max_ = 0.0f;
};

}  // namespace sparq
