// N:M structured-sparsity masks.
//
// An N:M pattern keeps at most N non-zeros in every group of M consecutive
// weights along the REDUCTION dimension (the inputs, K): 2:4 keeps two of
// every four, which is what sparse tensor cores and sparq's sparse INT8 GEMM
// exploit. Groups never straddle output channels: input channels
// [g*M, g*M + M) of one output channel form group g of that channel.
//
// Weight matrices are described by a WeightShape: `outputs` output channels
// (N of the GEMM, not the N of N:M), `inputs` reduction length K, and the
// memory layout, reusing the GEMM's WeightLayout so that users see one enum:
//   out_in: [outputs][inputs], element (o, i) at o * inputs + i
//           (PyTorch nn.Linear.weight; groups are 4 contiguous floats)
//   in_out: [inputs][outputs], element (o, i) at i * outputs + o
//           (groups are 4 elements one row apart)
// Matrices are dense (no leading dimension): copy strided data first.
//
// Magnitude pruning (nm_mask) keeps, in every group, the N elements of
// largest |w|. TIE-BREAKING: among equal magnitudes the element with the
// LOWER input index wins (so +0.0 and -0.0 tie, and a group of equal values
// keeps its first N). The result is therefore a deterministic function of
// the weights, identical for both layouts of the same matrix.
//
// K not divisible by M (TailPolicy):
//   refuse    (default): throws sparq::Error naming K and M;
//   pad_zeros: the matrix behaves as if extended with zero inputs up to the
//             next multiple of M. Zeros never beat a real element (equal
//             magnitudes: the lower, real, index wins), so the last, partial
//             group of r < M real inputs keeps min(N, r) of them. The mask
//             itself covers only the real K inputs.
//
// Bad input: N < 1, M > 16, N >= M, sizes < 1, a span of the wrong size, or
// a NaN/Inf weight throw sparq::Error (a NaN has no magnitude to rank; an
// Inf weight means the model is already broken).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "sparq/error.hpp"
#include "sparq/gemm/packed_weights.hpp"  // WeightLayout

namespace sparq {

/// N:M: keep at most `n` non-zeros in each group of `m` along the inputs.
struct NMPattern {
  int n = 2;
  int m = 4;
  /// Throws sparq::Error unless 1 <= n < m <= 16.
  void validate() const;
  friend bool operator==(const NMPattern&, const NMPattern&) = default;
};

/// What to do when the reduction length is not a multiple of M.
enum class TailPolicy : uint8_t {
  refuse,     ///< throw sparq::Error
  pad_zeros,  ///< behave as if padded with zero inputs (see the file comment)
};

/// Options of the magnitude pruners.
struct PruneOptions {
  NMPattern pattern{};
  TailPolicy tail = TailPolicy::refuse;
};

/// Shape and layout of a dense weight matrix (see the file comment).
struct WeightShape {
  int64_t outputs = 0;  ///< output channels (rows of out_in)
  int64_t inputs = 0;   ///< reduction length K (columns of out_in)
  WeightLayout layout = WeightLayout::out_in;

  int64_t size() const noexcept { return outputs * inputs; }
  /// Offset of element (output o, input i) in the dense buffer.
  int64_t index(int64_t o, int64_t i) const noexcept {
    return layout == WeightLayout::out_in ? o * inputs + i : i * outputs + o;
  }
  /// Throws sparq::Error naming `who` unless outputs, inputs >= 1 and
  /// `elements` (a buffer's size) equals outputs * inputs.
  void validate(std::size_t elements, const char* who) const;
  friend bool operator==(const WeightShape&, const WeightShape&) = default;
};

/// A keep/prune decision per weight, stored in the weights' own layout:
/// keep[shape.index(o, i)] is 1 to keep the weight, 0 to prune it.
struct SparseMask {
  WeightShape shape{};
  NMPattern pattern{};
  std::vector<uint8_t> keep;

  bool kept(int64_t o, int64_t i) const noexcept { return keep[shape.index(o, i)] != 0; }
  /// Number of kept weights.
  int64_t kept_count() const noexcept;
  /// Zeroes the pruned weights of `weights` (same shape and layout) in place.
  /// Throws sparq::Error if the size differs.
  void apply(std::span<float> weights) const;
  void apply(std::span<int8_t> weights) const;
  /// True if every group of M inputs of every output keeps at most N
  /// weights (a partial last group is checked over its real inputs).
  bool satisfies_pattern() const noexcept;
  friend bool operator==(const SparseMask&, const SparseMask&) = default;
};

/// The N:M magnitude mask of `weights` along the inputs (see the file
/// comment for grouping, tie-breaking and the tail policy). Every full group
/// keeps exactly N weights.
SparseMask nm_mask(std::span<const float> weights, const WeightShape& shape,
                   const PruneOptions& options = {});

/// nm_mask applied: a copy of `weights` with the pruned weights set to 0.
std::vector<float> prune_nm(std::span<const float> weights, const WeightShape& shape,
                            const PruneOptions& options = {});

/// A "transposable" 2:4 mask: 2:4 along the inputs AND along the outputs, so
/// that the pruned matrix is 2:4 sparse whether it is used as W or as W^T
/// (e.g. a weight also used transposed in the backward pass).
///
/// Both constraints decompose over the 4x4 blocks (outputs 4a..4a+3 x inputs
/// 4b..4b+3): a block must keep exactly two weights in each of its rows and
/// columns. There are 90 such patterns; every block takes the one with the
/// largest kept sum of |w| (exhaustive search, so the mask is optimal).
/// Tie-breaking between equal sums: the first pattern in the order of
/// (pair of row 0, pair of row 1, pair of row 2, pair of row 3), pairs
/// ordered (0,1) (0,2) (0,3) (1,2) (1,3) (2,3) by input index.
///
/// `tail` applies to BOTH dimensions (the outputs must also be a multiple of
/// 4 unless pad_zeros). With pad_zeros, padded blocks are searched with zero
/// weights and padded positions are dropped, so partial rows/columns keep at
/// most two. The returned mask's pattern is 2:4.
SparseMask transposable_mask(std::span<const float> weights, const WeightShape& shape,
                             TailPolicy tail = TailPolicy::refuse);

/// True if the mask, read along the OUTPUTS (groups of 4 consecutive output
/// channels of each input), also keeps at most 2 per group: the transposed
/// half of the transposable property (satisfies_pattern() is the other).
bool satisfies_pattern_transposed(const SparseMask& mask) noexcept;

namespace detail {
/// Throws sparq::Error naming `who` and the element if a weight is NaN/Inf.
void check_finite_weights(std::span<const float> weights, const WeightShape& shape,
                          const char* who);
/// Checks K against the tail policy; returns the number of groups per output
/// (ceil(K / M)).
int64_t checked_group_count(const WeightShape& shape, const NMPattern& pattern, TailPolicy tail,
                            const char* who);
}  // namespace detail

}  // namespace sparq
