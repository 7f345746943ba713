// A zero-filled PackedWeightsData of one kernel table's layout (its isa, nr,
// kr; kp and n_panels from n and k), for the code that fills panels itself:
// pack_weights, and the INT8 attention products, which quantize k and v
// straight into a reused buffer on every call (src/nn/transformer.cpp).
// Internal to src/.
#pragma once

#include <cstdint>
#include <memory>

#include "kernels/gemm_kernels.hpp"
#include "sparq/detail/packed_weights_data.hpp"

namespace sparq::detail {

/// n x k weights in `kernels`' layout, every panel byte and column sum 0
/// (padding stays 0 however often the n x k positions are rewritten); the
/// scales are left empty.
std::shared_ptr<PackedWeightsData> zeroed_packed_weights(int64_t n, int64_t k,
                                                         const GemmKernels& kernels);

}  // namespace sparq::detail
