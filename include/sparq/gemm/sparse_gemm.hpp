// 2:4 sparse INT8 GEMM: the dense GEMM's API (gemm.hpp) on weights packed
// from the 2:4 pruner's compressed format (sparq/sparse/compressed.hpp).
//
//   CompressedNM<int8_t> cw = compress(pruned_int8, {N, K, WeightLayout::out_in});
//   PackedSparseWeights sw = pack_sparse_weights(cw, scales);
//   SparsePath ran = gemm(activations, sw, stage, out);  // sparq::gemm, gemm.hpp
//
// WHY: a 2:4 layer stores half of its values plus 2 bits of index per kept
// value, 0.625x the bytes of dense int8. Batch-1..8 inference reads every
// weight once per call and is bound by memory bandwidth when the weights
// come from DRAM, so reading 0.625x the bytes makes it up to 1.6x faster.
// Where multiplies are the limit (larger M, or weights resident in cache)
// the sparse kernels at best tie with dense: each dot product of 4 kept
// values needs one gather (a byte shuffle) next to the multiply, and on
// current x86 cores the two share an execution pipe (docs/sparse-gemm.md).
//
// RESULTS are bit-identical to sparq::gemm() on the same pruned weights
// packed densely (pack_weights(decompress(cw), ...)), for every ISA, both
// paths, every output stage, s8 and u8 activations, any thread count, and
// for K beyond the int32 bound (the same int64 chunk combination as the
// dense driver; the raw int32 stage throws sparq::Error when the exact sum
// does not fit, exactly like the dense gemm).
//
// PATHS (SparsePath):
//   direct: a sparse microkernel reads the compressed weights as they are.
//           Per 8 inputs and 16 output channels (AVX-512) it loads 64 bytes
//           of kept values and 16 bytes of indices, turns the indices into a
//           byte-gather control shared by all rows of the tile, and per row
//           issues one gather (vpermb over a 64-input window with VBMI,
//           vpshufb over 8 inputs without) and one vpdpbusd.
//   expand: each panel of output channels is expanded once per call into
//           the dense packed layout in a cache-resident buffer and the dense
//           microkernel runs every row over it; expansion is paid once per
//           panel, not once per row. Needs a dense kernel with k-groups of 4
//           and the sparse panel width (x86, scalar, neondot); on neon and
//           neoni8mm a request for expand runs direct.
//   automatic (default): direct when M <= sparse_direct_max_rows(isa)
//           (a smaller limit when the sparse weights fit in the L2 of a core,
//           as the OS reports it),
//           expand otherwise (choose_sparse_path). The limits are measured
//           per kernel table: AVX-512 with VBMI always direct (64 rows with
//           weights in L2); AVX2 and scalar always direct; AVX-512 without
//           VBMI and neondot 48 (24 in L2).
//
// Packed sparse weights take about 0.63x the bytes of dense packed weights
// (packed_bytes(): values K/2 + indices K/8 per channel + the int32 column
// sums both formats store).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "sparq/gemm/gemm.hpp"
#include "sparq/gemm/packed_weights.hpp"
#include "sparq/isa.hpp"
#include "sparq/sparse/compressed.hpp"

namespace sparq {

/// Which sparse GEMM algorithm runs (see the file comment).
enum class SparsePath : uint8_t {
  automatic,  ///< request only: let sparq choose per call
  direct,     ///< sparse microkernel on the compressed weights
  expand,     ///< expand panels to dense, dense microkernel
};

/// "automatic", "direct" or "expand".
const char* sparse_path_name(SparsePath path) noexcept;

/// Per-call options of the sparse GEMM.
struct SparseGemmOptions {
  int threads = 0;                          ///< 0: sparq::num_threads()
  SparsePath path = SparsePath::automatic;  ///< force a path (tests, benchmarks)
};

/// Packed 2:4 weights (pack_sparse_weights): the handle of packed_weights.hpp.
/// column_sums() are those of the pruned weights; packed_bytes() counts kept
/// values + indices + column sums (compare with PackedWeights').
class PackedSparseWeights : public detail::WeightsHandle<detail::PackedSparseWeightsData> {
 public:
  using WeightsHandle::WeightsHandle;
};

/// Packs 2:4 compressed int8 weights (any K: a padded last group is fine)
/// for the active ISA's sparse kernels.
///   scales: empty (all 1), 1 value (per tensor) or N values (per channel);
///           each finite and > 0 (as pack_weights).
/// Throws sparq::Error if the pattern is not 2:4, the object fails
/// CompressedNM::validate(), K > 2^24 or a scale is bad. gemm() repacks on
/// the fly if the active ISA changed since packing (slow, never wrong).
PackedSparseWeights pack_sparse_weights(const CompressedNM<int8_t>& weights,
                                        std::span<const float> scales = {});

/// The dense matrix these weights hold, [N][K] (pruned entries 0).
std::vector<int8_t> unpack_sparse_weights(const PackedSparseWeights& weights);

/// Largest M for which the automatic choice runs the direct kernel on `isa`
/// (measured crossover, see docs/sparse-gemm.md); INT64_MAX where the direct
/// kernel is always chosen.
int64_t sparse_direct_max_rows(Isa isa) noexcept;

/// The path gemm() takes for M rows with these weights under the active ISA
/// and options.path (never SparsePath::automatic).
SparsePath choose_sparse_path(const PackedSparseWeights& weights, int64_t m,
                              const SparseGemmOptions& options = {});

// The GEMM itself is sparq::gemm (gemm.hpp) with a PackedSparseWeights
// argument and SparseGemmOptions; it returns the path that ran.

}  // namespace sparq
