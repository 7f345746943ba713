// Kernels behind the calibration observers (include/sparq/observe/).
//
// Plain functions on plain structs (docs/design.md rule 1): each ISA folder has
// one file, observe_f32__<isa>.cpp, that defines the three functions below
// with its suffix, and src/observe/observe_kernels.cpp puts them in a table
// per ISA. All kernels are noexcept and give bit-identical results on every
// ISA (tests/kernels/observe_kernels_test.cpp):
//   * min/max are exact operations; the result is canonicalised so that a
//     zero minimum or maximum is +0.0 whatever the order of the values;
//   * the histogram bin of a value is computed as documented below with
//     exactly representable steps, so the counts are integers that match.
#pragma once

#include <cstddef>
#include <cstdint>

#include "sparq/isa.hpp"

namespace sparq::detail {

/// Running summary of finite values. Start with min = +inf, max = -inf and
/// zero counts; kernels only ever move min down / max up and add to counts.
struct MinMaxAccum {
  float min;
  float max;
  int64_t nan_count;
  int64_t inf_count;
};

/// Histogram binning of one batch on the grid of HistogramObserver: the bin
/// of a finite value x is
///     t   = x * inv_width                 (inv_width is a power of two: exact)
///     t   = min(max(t, -2^30), 2^30)      (only out-of-grid values are clamped)
///     bin = floor(t) - k0, clamped to [0, bins - 1]
/// NaN and +-Inf are not binned (they are counted in `acc`). The caller makes
/// sure every finite value lies inside the grid (it checks acc afterwards and
/// rebins if not), so the clamps only keep garbage in range.
///
/// `counts` has `kSubHistograms` sub-histograms of `stride` (>= bins + 1)
/// uint32 each; a kernel may spread the increments over them (to avoid
/// store-to-load forwarding stalls on runs of equal bins) and may use slot
/// `bins` of each as a discard bin. The caller sums bins [0, bins) over the
/// sub-histograms and keeps batches below 2^32 values per call.
struct HistogramArgs {
  const float* x;
  std::size_t n;
  float inv_width;
  int32_t k0;
  int32_t bins;
  std::size_t stride;
  uint32_t* counts;
};
inline constexpr int kSubHistograms = 4;

/// Min/max of the finite values of x[0, n) folded into acc, NaN/Inf counted.
using ObserveMinmax = void(const float* x, std::size_t n, MinMaxAccum* acc) noexcept;
/// Element-wise running min/max: mins[i] = min(mins[i], x[i]) for finite
/// x[i] (same for maxs), NaN/Inf counted in acc (acc.min/max untouched).
/// Used for the per-channel observers when the channel axis is (near) the
/// innermost one.
using ObserveMinmaxColumns = void(const float* x, std::size_t n, float* mins, float* maxs,
                                  MinMaxAccum* acc) noexcept;
/// Histogram of x (see HistogramArgs) and, in the same pass, min/max and
/// NaN/Inf counts into acc.
using ObserveHistogram = void(const HistogramArgs& args, MinMaxAccum* acc) noexcept;

struct ObserveKernels {
  ObserveMinmax* minmax;
  ObserveMinmaxColumns* minmax_columns;
  ObserveHistogram* histogram;
};

/// The kernels for `isa` (scalar for ISAs without own kernels). Callers look
/// this up once per observe() call.
const ObserveKernels& observe_kernels(Isa isa);

// The per-ISA definitions (declared here so the table and the tests see them).
#define SPARQ_DECLARE_OBSERVE_KERNELS(suffix)                \
  ObserveMinmax observe_minmax_f32__##suffix;                \
  ObserveMinmaxColumns observe_minmax_columns_f32__##suffix; \
  ObserveHistogram observe_histogram_f32__##suffix;

SPARQ_DECLARE_OBSERVE_KERNELS(reference)
SPARQ_DECLARE_OBSERVE_KERNELS(avx2)
SPARQ_DECLARE_OBSERVE_KERNELS(avx512)
SPARQ_DECLARE_OBSERVE_KERNELS(neon)

#undef SPARQ_DECLARE_OBSERVE_KERNELS

}  // namespace sparq::detail
