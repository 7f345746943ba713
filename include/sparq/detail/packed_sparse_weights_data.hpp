// The contents of a sparq::PackedSparseWeights (internal; see sparse_gemm.hpp).
//
// Layout of `panels` (recorded by isa / nr):
//   K is zero-padded to kp = round_up(K, 8); a "step" is 8 inputs (two 2:4
//   groups). N is split into n_panels = ceil(N / nr) panels of nr channels
//   (nr = the dense kernel's panel width of that ISA, so one sparse panel
//   expands into exactly one dense panel). Panel p is kp / 8 steps, each
//   nr * 5 bytes:
//     values: nr dwords; dword j = the 4 kept values of channel p*nr + j in
//             inputs [8s, 8s + 8), in input order (2 of group 2s, then 2 of
//             group 2s + 1), exactly values[o*V + 4s .. 4s+3] of CompressedNM
//     meta:   nr bytes; byte j = channel j's index byte of that step, exactly
//             the CompressedNM metadata byte s of the row: bits 1:0 and 3:2
//             the positions (0..3) of values 0 and 1 inside group 2s, bits 5:4
//             and 7:6 those of values 2 and 3 inside group 2s + 1.
//   Padded channels and padded steps hold value 0 (and index byte 0x44, the
//   pattern "positions 0 and 1" of CompressedNM's empty groups; any valid
//   index works with value 0).
//   Per channel and step: 4 + 1 bytes for 8 inputs, 0.625x dense.
// The buffer is 64-byte aligned; with nr = 64 one step is 5 cache lines.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "sparq/detail/packed_weights_data.hpp"  // AlignedBytes
#include "sparq/isa.hpp"

namespace sparq::detail {

struct PackedSparseWeightsData {
  Isa isa = Isa::scalar;  ///< the sparse kernel table this layout was made for
  int nr = 0;             ///< output channels per panel
  int64_t n = 0;
  int64_t k = 0;
  int64_t kp = 0;        ///< round_up(k, 8)
  int64_t n_panels = 0;  ///< ceil(n / nr)
  AlignedBytes panels;   ///< n_panels * (kp / 8) * nr * 5 bytes
  /// Exact sum_k of the pruned w[n][k], zero-padded to n_panels * nr.
  std::vector<int32_t> col_sums;
  std::vector<float> scales;  ///< n values
  bool per_channel = false;

  int64_t steps() const noexcept { return kp / 8; }
  int64_t panel_bytes() const noexcept { return steps() * nr * 5; }
  const int8_t* panel(int64_t p) const noexcept { return panels.data() + p * panel_bytes(); }
};

/// Values + metadata of channel j, step s of a packed buffer (for repacking
/// and tests): writes 4 values and returns the index byte.
uint8_t sparse_step(const PackedSparseWeightsData& d, int64_t channel, int64_t step,
                    int8_t values[4]) noexcept;

/// The same weights packed for another ISA's sparse layout (same scales).
std::shared_ptr<const PackedSparseWeightsData> repack_sparse_weights(
    const PackedSparseWeightsData& data, Isa isa);

}  // namespace sparq::detail
