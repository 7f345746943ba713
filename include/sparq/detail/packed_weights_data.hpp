// The contents of a sparq::PackedWeights (internal; see packed_weights.hpp).
//
// Layout of `panels` (one ISA's kernel layout, recorded by isa/nr/kr):
//   N is split into n_panels = ceil(N / nr) panels of nr output channels;
//   K is zero-padded to kp = round_up(K, kr). Panel p occupies
//   panels[p * kp * nr, (p + 1) * kp * nr) as [kp / kr][nr][kr] int8:
//     element (n = p*nr + j, k) at p*kp*nr + (k/kr)*nr*kr + j*kr + k%kr.
//   Padded channels and padded k hold zeros, so they add nothing to a sum.
// The buffer is 64-byte aligned (one zmm / cache line).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "sparq/isa.hpp"

namespace sparq::detail {

/// A zero-initialised, 64-byte aligned byte buffer. Buffers of 4 MiB and
/// more are 2 MiB aligned and, on Linux, advised to use transparent huge
/// pages: the GEMM streams through packed weights, and with 4 KiB pages a
/// 16 MiB matrix needs more TLB entries than the core has.
class AlignedBytes {
 public:
  AlignedBytes() = default;
  /// Defined in src/gemm/aligned_bytes.cpp: the huge-page advice needs
  /// <sys/mman.h>, and installed headers include no POSIX headers.
  explicit AlignedBytes(std::size_t size);
  int8_t* data() noexcept { return data_.get(); }
  const int8_t* data() const noexcept { return data_.get(); }
  std::size_t size() const noexcept { return size_; }

 private:
  static constexpr std::size_t kHuge = std::size_t{4} << 20;
  static std::align_val_t alignment(std::size_t size) noexcept {
    return std::align_val_t{size >= kHuge ? std::size_t{2} << 20 : std::size_t{64}};
  }
  struct Free {
    std::align_val_t align{64};
    void operator()(int8_t* p) const noexcept { ::operator delete[](p, align); }
  };
  std::unique_ptr<int8_t[], Free> data_{nullptr, Free{}};
  std::size_t size_ = 0;
};

struct PackedWeightsData {
  Isa isa = Isa::scalar;  ///< the kernel table this layout was made for
  int nr = 0;             ///< output channels per panel
  int kr = 0;             ///< k-group width
  int64_t n = 0;
  int64_t k = 0;
  int64_t kp = 0;        ///< round_up(k, kr)
  int64_t n_panels = 0;  ///< ceil(n / nr)
  AlignedBytes panels;   ///< n_panels * kp * nr bytes
  /// sum_k w[n][k] per channel, zero-padded to n_panels * nr entries so a
  /// kernel can read a whole panel's worth. Exact: |sum| <= 128 * K and
  /// pack_weights limits K to 2^24.
  std::vector<int32_t> col_sums;
  std::vector<float> scales;  ///< n values
  bool per_channel = false;

  const int8_t* panel(int64_t p) const noexcept { return panels.data() + p * kp * nr; }
};

/// Reads back w[n][k] from a packed buffer (for repacking and tests).
std::vector<int8_t> unpack_weights(const PackedWeightsData& data);

/// The same weights packed for another kernel layout (same scales).
std::shared_ptr<const PackedWeightsData> repack_weights(const PackedWeightsData& data, Isa isa);

}  // namespace sparq::detail
