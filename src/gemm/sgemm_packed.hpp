// The packed FP32 weights behind sparq::PackedWeightsF32 (internal: the
// layout is src/kernels/sgemm_kernels.hpp's, panels of NR columns, [K][NR]
// each).
#pragma once

#include <cstddef>
#include <cstdint>

#include <memory>

#include "sparq/detail/packed_weights_data.hpp"  // AlignedBytes
#include "sparq/gemm/sgemm.hpp"
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

/// pack_weights_f32 (same checks and layout) into `scratch`'s buffer when
/// no other handle shares it and it is large enough, else into a new one
/// that `scratch` then keeps. For callers that pack on every call (the FP32
/// layers): the buffer stays allocated and mapped between calls. The
/// returned handle shares `scratch`: drop it before the next call, or that
/// call allocates anew.
PackedWeightsF32 pack_weights_f32_scratch(std::shared_ptr<PackedWeightsF32Data>& scratch,
                                          const float* weights, int64_t n, int64_t k,
                                          WeightLayout layout, int64_t ld = 0);

}  // namespace sparq::detail
