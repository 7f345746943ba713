// Statistics of a pruned weight matrix against its dense original.
#pragma once

#include <cstdint>
#include <span>

#include "sparq/sparse/mask.hpp"

namespace sparq {

struct SparsityStats {
  NMPattern pattern{};
  int64_t elements = 0;             ///< outputs * inputs
  int64_t nonzeros = 0;             ///< non-zeros of the pruned matrix
  double sparsity = 0;              ///< 1 - nonzeros / elements (2:4 of a dense matrix: 0.5)
  double total_l1 = 0;              ///< sum |w| of the original
  double retained_l1 = 0;           ///< sum |w| of the pruned matrix
  double retained_l1_fraction = 1;  ///< retained_l1 / total_l1 (1 if total is 0)
  /// ||pruned||_2 / ||original||_2 (a NORM ratio, not an energy ratio: the
  /// retained energy is its square); 1 if the original is all zeros.
  double retained_l2_fraction = 1;
  int64_t groups = 0;  ///< groups of M inputs per output, summed over outputs
  /// Groups with fewer than N non-zeros (fewer than min(N, r) for a partial
  /// last group of r real inputs): the compressed format stores zeros there.
  int64_t groups_below_n = 0;
  /// Groups with MORE than N non-zeros: the matrix is not N:M sparse and
  /// compress() would refuse it. 0 for anything nm_mask produced.
  int64_t groups_above_n = 0;
};

/// Statistics of `pruned` (any matrix of the same shape, e.g. prune_nm's
/// output, or weights after fine-tuning with a fixed mask) against
/// `original`, grouped by options.pattern (options.tail as for nm_mask).
/// Throws sparq::Error on mismatched sizes, a bad shape/pattern/tail, or
/// NaN/Inf in either matrix.
SparsityStats sparsity_stats(std::span<const float> original, std::span<const float> pruned,
                             const WeightShape& shape, const PruneOptions& options = {});

/// Statistics of `original` pruned by `mask` (its shape and pattern; a K
/// that is not a multiple of M counts as padded).
SparsityStats sparsity_stats(std::span<const float> original, const SparseMask& mask);

}  // namespace sparq
