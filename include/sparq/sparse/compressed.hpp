// Compressed N:M weights: the kept values plus packed index metadata.
//
// A 2:4 layer stores K/2 values and K/8 bytes of metadata per output
// channel (2 bits per kept value: one byte holds the four indices of two
// groups, i.e. covers 8 inputs) instead of K values: 0.625x the bytes of
// dense int8, 0.53125x of dense fp32. sparq's sparse INT8 GEMM packs its kernel layout from
// CompressedNM<int8_t>.
//
// LAYOUT (identical for fp32 and int8 values; always output-major, whatever
// the layout of the dense matrix it came from):
//
//   G = ceil(K / M)           groups per output row (K = inputs)
//   V = G * N                 values per row            (2:4: K/2)
//   b = ceil(log2(M))         index bits per value      (M=4: 2, M=16: 4)
//   B = ceil(V * b / 8)       metadata bytes per row    (2:4: K/8 when 8 | K)
//
//   values[o * V + g * N + j]   j-th kept value (j = 0..N-1) of group g of
//                               output o, i.e. weight (o, g*M + idx(o,g,j)).
//   metadata[o * B + ...]       row o's indices as a little-endian bit
//                               stream: slot s = g*N + j holds idx(o,g,j) in
//                               bits [s*b, s*b + b), bit 0 = the least
//                               significant bit of byte 0 of the row.
//                               Unused bits at the end of a row are 0.
//
//   Within a group, indices are strictly increasing (idx(o,g,0) <
//   idx(o,g,1) < ...), so values appear in input order.
//
// For 2:4 this is, byte by byte: byte t of row o describes groups 2t and
// 2t+1 (inputs 8t .. 8t+7):
//     bits 1:0  index (0..3) of group 2t's first kept value   values[o*V + 4t + 0]
//     bits 3:2  index of group 2t's second kept value         values[o*V + 4t + 1]
//     bits 5:4  index of group 2t+1's first kept value        values[o*V + 4t + 2]
//     bits 7:6  index of group 2t+1's second kept value       values[o*V + 4t + 3]
// e.g. group 2t keeping inputs {1, 3} and group 2t+1 keeping {0, 2} gives
// byte 0b10'00'11'01 = 0x8D.
//
// A group with fewer than N non-zeros still fills its N slots: the extra
// slots take the lowest unused positions of the group with value 0, so every
// row has exactly V values and the format stays fixed-size. With
// TailPolicy::pad_zeros and K % M != 0, the last group covers padded
// positions >= K; a slot may point there only with value 0.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sparq/sparse/mask.hpp"

namespace sparq {

/// Compressed N:M weights; see the file comment for the exact layout.
template <class T>
struct CompressedNM {
  NMPattern pattern{};
  int64_t outputs = 0;            ///< output channels (rows)
  int64_t inputs = 0;             ///< real reduction length K (before any padding)
  std::vector<T> values;          ///< [outputs][values_per_row()]
  std::vector<uint8_t> metadata;  ///< [outputs][metadata_bytes_per_row()]

  int64_t groups_per_row() const noexcept { return (inputs + pattern.m - 1) / pattern.m; }
  int64_t values_per_row() const noexcept { return groups_per_row() * pattern.n; }
  int index_bits() const noexcept {
    int b = 0;
    while ((1 << b) < pattern.m) ++b;
    return b;
  }
  int64_t metadata_bytes_per_row() const noexcept {
    return (values_per_row() * index_bits() + 7) / 8;
  }
  /// Index (0..M-1, position inside group g) of slot j of group g of row o.
  int index(int64_t o, int64_t g, int j) const noexcept {
    const int b = index_bits();
    const int64_t bit = (g * pattern.n + j) * b;
    const uint8_t* row = metadata.data() + o * metadata_bytes_per_row();
    // b <= 4 divides 8 for M in {2, 4, 16} but not for M = 3, 5..8 (b = 3):
    // read two bytes so that a field may straddle a byte boundary.
    unsigned word = row[bit / 8];
    if ((bit % 8) + b > 8) word |= static_cast<unsigned>(row[bit / 8 + 1]) << 8;
    return static_cast<int>((word >> (bit % 8)) & ((1u << b) - 1u));
  }
  /// Bytes of values + metadata.
  int64_t bytes() const noexcept {
    return static_cast<int64_t>(values.size() * sizeof(T) + metadata.size());
  }
  /// Throws sparq::Error if the sizes, indices (increasing, < M) or padded
  /// slots (value 0) are inconsistent: decompress() calls it, so a corrupt
  /// object is reported rather than read out of bounds.
  void validate() const;
  friend bool operator==(const CompressedNM&, const CompressedNM&) = default;
};

/// Compresses an ALREADY PRUNED matrix: the kept positions are its
/// non-zeros. Throws sparq::Error if a group has more than N non-zeros (the
/// message names the output and group), on NaN weights (fp32), a bad shape,
/// pattern or tail (options.tail as for nm_mask: padded groups hold zeros).
CompressedNM<float> compress(std::span<const float> pruned, const WeightShape& shape,
                             const PruneOptions& options = {});
CompressedNM<int8_t> compress(std::span<const int8_t> pruned, const WeightShape& shape,
                              const PruneOptions& options = {});

/// Compresses `weights` at the positions `mask` keeps (weights outside the
/// mask are dropped; kept zeros are stored as values). The mask gives the
/// shape and pattern; if inputs % M != 0 the last group is padded. A group
/// where the mask keeps fewer than N fills its extra slots as above (lowest
/// unused positions, value 0). Throws sparq::Error if the mask keeps more
/// than N in a group or the sizes differ.
CompressedNM<float> compress(std::span<const float> weights, const SparseMask& mask);
CompressedNM<int8_t> compress(std::span<const int8_t> weights, const SparseMask& mask);

/// The dense matrix (pruned weights as 0) in `layout`; exact inverse of
/// compress(). Throws sparq::Error if validate() fails.
std::vector<float> decompress(const CompressedNM<float>& c,
                              WeightLayout layout = WeightLayout::out_in);
std::vector<int8_t> decompress(const CompressedNM<int8_t>& c,
                               WeightLayout layout = WeightLayout::out_in);

/// Magnitude pruning + compression in one pass over the weights, bit for bit
/// equal to compress(prune_nm(weights, shape, options), shape, options) (the
/// zeros nm_mask keeps by tie-breaking are the lowest-index zeros, exactly
/// the slots compress() fills), without the intermediate mask and matrix.
CompressedNM<float> prune_and_compress(std::span<const float> weights, const WeightShape& shape,
                                       const PruneOptions& options = {});
/// The same into `out`, reusing its buffers: re-pruning a layer (e.g. every
/// few fine-tuning steps) then costs no allocation. A fresh 4096x4096 result
/// is 36 MB whose first touch (page faults) costs about as much as the
/// pruning itself (docs/sparsity.md). On a NaN/Inf weight it throws and
/// `out` holds unspecified (valid-sized) contents.
void prune_and_compress(std::span<const float> weights, const WeightShape& shape,
                        const PruneOptions& options, CompressedNM<float>& out);

}  // namespace sparq
