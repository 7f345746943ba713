// Internal: the range-selection searches of HistogramObserver on plain
// histograms (documented in include/sparq/observe/histogram.hpp), exposed so
// the tests can run them on hand-made histograms.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace sparq::detail {

/// PyTorch HistogramObserver._non_linear_param_search on `hist`, whose bins
/// evenly cover [min_val, max_val], quantizing to `dst_bins` levels. Returns
/// the chosen [min, max] (bin edges).
std::pair<double, double> mse_search(std::span<const double> hist, double min_val, double max_val,
                                     int dst_bins);

/// PyTorch HistogramObserver._compute_quantization_error for the candidate
/// bins [start_bin, end_bin] (for the tests).
double mse_quantization_error(std::span<const double> hist, double bin_width, int start_bin,
                              int end_bin, int dst_bins);

/// TensorRT KL-divergence calibration on a histogram of |x| whose bin j
/// covers [j w, (j + 1) w): returns the number i of bins kept (threshold
/// i * w). Histograms with at most `levels` bins keep everything. Bin 0 is
/// first lowered to bin 1's count (the zero spike of ReLU outputs is exact
/// when quantized; see range_search.cpp).
std::size_t entropy_search(std::span<const double> abs_hist, int levels);

/// The value at `rank` (0 <= rank <= sum of counts) of a histogram whose bin
/// j covers [first_edge + j w, first_edge + (j + 1) w), interpolating
/// linearly inside the bin.
double histogram_quantile(std::span<const double> hist, double first_edge, double width,
                          double rank);

/// floor(x * inv_width) in float, as the kernels compute a bin number.
int64_t grid_floor(float x, float inv_width);

/// The grid exponent e of [lo, hi] (conditions (a)-(c) in histogram.hpp).
int grid_exponent(float lo, float hi, int bins);

}  // namespace sparq::detail
