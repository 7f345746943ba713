// Input-channel permutations that make N:M pruning keep more magnitude.
//
// N:M groups are fixed runs of M consecutive inputs. If two large weights of
// a row share a group with two other large ones, 2:4 must drop two of them;
// reordering the inputs first can put them in different groups. This is the
// approach of NVIDIA's ASP (Pool & Yu, "Channel Permutations for N:M
// Sparsity", NeurIPS 2021): search a permutation of the K input channels that
// maximises the retained L1 magnitude
//     sum over outputs and groups of (sum of the N largest |w| in the group)
// of the permuted matrix, then permute the layer's inputs and, to keep the
// network's function, the producer of those inputs.
//
// PERMUTATION CONVENTION: perm[j] is the ORIGINAL input channel placed at
// position j. The permuted layer is W'(o, j) = W(o, perm[j]) and reads the
// permuted input x'[j] = x[perm[j]]; then W' x' = W x exactly as a sum (its
// terms are the same products in another order, so FP32 results differ only
// by summation rounding). x' is produced by permuting the OUTPUT channels
// (rows) of the producing layer and its bias: W1'(j, :) = W1(perm[j], :),
// b1'[j] = b1[perm[j]]. Element-wise operations in between (ReLU, per-channel
// activation scales, batch-norm folded per channel) commute with the
// permutation once their per-channel parameters are permuted the same way
// (permute_vector).
//
// SEARCH (search_permutation): a deterministic local search by channel
// swaps, as ASP's "channel swap" stage. It starts from the identity and, for
// every pair of groups (stripes), evaluates the M*M swaps of one input of
// one group with one input of the other and applies the best one if it
// increases the retained L1. Sweeps over all group pairs repeat until a
// sweep improves nothing or `max_sweeps` is reached; a pair whose two groups
// have not changed since it was last examined is skipped (its answer would
// be the same). Every accepted swap strictly increases the objective, so the
// result is never worse than the identity; the final figures are recomputed
// in double precision and, should float rounding ever make the permuted
// figure lower, the identity is returned. The result is a local optimum
// w.r.t. single swaps, not a global one (ASP escapes local optima with
// random perturbations; sparq keeps the search deterministic).
//
// Cost per sweep: (K/M)^2 / 2 group pairs x 2*M^2 passes over the outputs;
// the evaluation of a swap is one max and one add per output (see
// docs/sparsity.md for the derivation and measured times).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sparq/sparse/mask.hpp"

namespace sparq {

struct PermutationOptions {
  NMPattern pattern{};
  /// K % M != 0: refuse, or pad with zero inputs that stay at the end (they
  /// are never swapped, so the permutation covers exactly the K real inputs).
  TailPolicy tail = TailPolicy::refuse;
  /// Upper bound on sweeps over all group pairs (>= 1); the search usually
  /// stops earlier, when a sweep finds no improving swap.
  int max_sweeps = 50;
};

struct PermutationResult {
  std::vector<int64_t> permutation;  ///< perm[j] = original input at position j
  double identity_l1 = 0;            ///< retained L1 of N:M pruning without permuting
  double permuted_l1 = 0;            ///< retained L1 with the permutation (>= identity_l1)
  double total_l1 = 0;               ///< sum of |w| (what dense keeps)
  int sweeps = 0;                    ///< sweeps run
  int64_t swaps = 0;                 ///< swaps applied
  bool converged = false;            ///< the last sweep found no improving swap
};

/// Searches an input permutation for N:M pruning of `weights` (see the file
/// comment). Throws sparq::Error on a bad shape/pattern/tail, max_sweeps < 1
/// or NaN/Inf weights.
PermutationResult search_permutation(std::span<const float> weights, const WeightShape& shape,
                                     const PermutationOptions& options = {});

/// Retained L1 magnitude of N:M pruning of the matrix with its inputs
/// permuted by `permutation` (empty = identity), in double precision:
/// sum over outputs and groups of the N largest |w| of the group.
double retained_l1(std::span<const float> weights, const WeightShape& shape,
                   const PruneOptions& options = {}, std::span<const int64_t> permutation = {});

/// Throws sparq::Error naming `who` unless `perm` is a permutation of
/// 0..size-1 (right size, every index once).
void check_permutation(std::span<const int64_t> perm, int64_t size, const char* who);

/// inv[perm[j]] = j. Throws sparq::Error unless perm is a permutation.
std::vector<int64_t> inverse_permutation(std::span<const int64_t> perm);

namespace detail {
/// W'(o, i) = W(perm[o], i) when along_outputs, else W(o, perm[i]): one
/// copy loop for both sides, checked against the permuted dimension.
template <class T>
std::vector<T> permute_impl(std::span<const T> weights, const WeightShape& shape,
                            std::span<const int64_t> perm, bool along_outputs) {
  const char* who = along_outputs ? "permute_outputs" : "permute_inputs";
  shape.validate(weights.size(), who);
  check_permutation(perm, along_outputs ? shape.outputs : shape.inputs, who);
  std::vector<T> out(weights.size());
  for (int64_t o = 0; o < shape.outputs; ++o)
    for (int64_t i = 0; i < shape.inputs; ++i)
      out[shape.index(o, i)] =
          weights[along_outputs ? shape.index(perm[o], i) : shape.index(o, perm[i])];
  return out;
}
}  // namespace detail

/// The consumer side: W'(o, j) = W(o, perm[j]) in the same layout.
/// Throws sparq::Error on a bad shape or permutation (its size must be
/// shape.inputs).
inline std::vector<float> permute_inputs(std::span<const float> weights, const WeightShape& shape,
                                         std::span<const int64_t> perm) {
  return detail::permute_impl(weights, shape, perm, false);
}
inline std::vector<int8_t> permute_inputs(std::span<const int8_t> weights, const WeightShape& shape,
                                          std::span<const int64_t> perm) {
  return detail::permute_impl(weights, shape, perm, false);
}

/// The producer side: W'(j, i) = W(perm[j], i), i.e. its OUTPUT channels are
/// permuted (the permutation's size must be shape.outputs).
inline std::vector<float> permute_outputs(std::span<const float> weights, const WeightShape& shape,
                                          std::span<const int64_t> perm) {
  return detail::permute_impl(weights, shape, perm, true);
}
inline std::vector<int8_t> permute_outputs(std::span<const int8_t> weights,
                                           const WeightShape& shape,
                                           std::span<const int64_t> perm) {
  return detail::permute_impl(weights, shape, perm, true);
}

/// v'[j] = v[perm[j]]: biases, per-channel scales, normalisation parameters.
inline std::vector<float> permute_vector(std::span<const float> v, std::span<const int64_t> perm) {
  check_permutation(perm, static_cast<int64_t>(v.size()), "permute_vector");
  std::vector<float> out(v.size());
  for (std::size_t j = 0; j < v.size(); ++j) out[j] = v[static_cast<std::size_t>(perm[j])];
  return out;
}

}  // namespace sparq
