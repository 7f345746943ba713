// The packed FP32 weights behind sparq::PackedWeightsF32 (internal: the
// layout is src/kernels/sgemm_kernels.hpp's, panels of NR columns, [K][NR]
// each).
#pragma once

#include <cstddef>
#include <cstdint>

#include "sparq/detail/packed_weights_data.hpp"  // AlignedBytes
#include "sparq/isa.hpp"

namespace sparq::detail {

struct PackedWeightsF32Data {
  int64_t n = 0;
  int64_t k = 0;
  int nr = 0;  ///< panel width of the kernel it was packed for
  int64_t n_panels = 0;
  Isa isa = Isa::scalar;
  AlignedBytes panels;  ///< n_panels * k * nr floats

  const float* panel(int64_t p) const noexcept {
    return reinterpret_cast<const float*>(panels.data()) + p * k * nr;
  }
};

}  // namespace sparq::detail
