// FP32 GEMM: sparq's own single-precision matrix product, with kernels per
// ISA chosen at run time like the INT8 ones (AVX-512F, AVX2 + FMA, NEON, a
// portable scalar kernel), the thread count of sparq::set_num_threads, and
// bias + ReLU fused into the store.
//
//   C[i][n] = relu?( bias[n] + sum_k A[i][k] * W[n][k] )
//
// It is what sparq's FP32 layers (nn::Linear, nn::Conv2d) run on, and the
// FP32 baseline `sparq bench gemm` compares the INT8 GEMM with.
//
// As with the INT8 GEMM, the weights are packed once (pack_weights_f32) and
// multiplied many times. Results are bit-identical for every thread count
// (work is split over output tiles, never over K) but may differ between ISAs
// by float rounding (each sums in its own tile order): within
// (K + 1) * 2^-24 * (|bias[n]| + sum_k |A[i][k] * W[n][k]|) of the exact value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "sparq/gemm/gemm.hpp"            // GemmOptions
#include "sparq/gemm/packed_weights.hpp"  // WeightLayout
#include "sparq/isa.hpp"

namespace sparq {

namespace detail {
struct PackedWeightsF32Data;  // defined in src/gemm/sgemm_packed.hpp (not installed)
}

/// An immutable, cheaply copyable handle to packed FP32 weights (copies share
/// the packed buffer). Thread-safe to use from several sgemm() calls at once.
class PackedWeightsF32 {
 public:
  PackedWeightsF32() = default;
  explicit PackedWeightsF32(std::shared_ptr<const detail::PackedWeightsF32Data> data);

  bool empty() const noexcept { return data_ == nullptr; }
  int64_t n() const noexcept;  ///< output channels
  int64_t k() const noexcept;  ///< reduction length (inputs)
  /// Bytes of the packed buffer the kernels read.
  std::size_t packed_bytes() const noexcept;
  /// The ISA whose kernel layout these weights were packed for.
  Isa isa() const noexcept;

  const detail::PackedWeightsF32Data& data() const noexcept { return *data_; }

 private:
  std::shared_ptr<const detail::PackedWeightsF32Data> data_;
};

/// Packs an N x K float weight matrix:
///   element (n, k) at weights[n * ld + k] (out_in, PyTorch's Linear.weight)
///   or weights[k * ld + n] (in_out); ld = 0 means dense (K or N).
/// The layout is chosen for active_isa() at packing time; sgemm() repacks on
/// the fly if the active ISA changed since. Throws sparq::Error on null
/// data, n or k outside [1, 2^31 - 1], or ld too small.
PackedWeightsF32 pack_weights_f32(const float* weights, int64_t n, int64_t k, WeightLayout layout,
                                  int64_t ld = 0);

/// C (m x w.n(), leading dimension ldc; 0 means w.n()) =
///   A (m x k, leading dimension lda; 0 means k) times the packed weights,
///   plus bias (empty, or w.n() values), then max(., 0) when relu is set.
/// m = 0 does nothing. Throws sparq::Error on empty weights, k != w.k(),
/// m < 0, null a or c (for m > 0), lda < k, ldc < n, or a bias of another
/// size. A and C must not overlap.
void sgemm(const float* a, int64_t m, int64_t k, int64_t lda, const PackedWeightsF32& w,
           std::span<const float> bias, bool relu, float* c, int64_t ldc = 0,
           const GemmOptions& options = {});

/// The FP32 microkernel sgemm() runs for `isa` (e.g.
/// "sgemm_f32_ukernel_14x32__avx512f"), for `sparq bench` and diagnostics.
const char* sgemm_kernel_name(Isa isa);

}  // namespace sparq
