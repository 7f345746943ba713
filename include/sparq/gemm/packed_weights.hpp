// Packed INT8 weights: the form the GEMM kernels read.
//
// An inference app packs each weight matrix once (pack_weights) and then
// multiplies activations by it many times (gemm.hpp). Weights are int8,
// symmetric (zero point 0), with one scale per output channel or one for the
// whole tensor. Packing reorders them into the kernel's tile layout, stores
// per-output-channel sums used to compensate the activations' zero point,
// and keeps the scales for the dequantizing output stages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "sparq/isa.hpp"

namespace sparq {

/// How a weight matrix of N output channels and K inputs is stored.
enum class WeightLayout : uint8_t {
  out_in,  ///< [N][K], row n holds output channel n (PyTorch nn.Linear.weight)
  in_out,  ///< [K][N], row k holds input k for every output channel
};

namespace detail {
struct PackedWeightsData;        // include/sparq/detail/packed_weights_data.hpp
struct PackedSparseWeightsData;  // include/sparq/detail/packed_sparse_weights_data.hpp

/// What the dense and the 2:4 sparse weight handles share: an immutable,
/// cheaply copyable handle (copies share the packed buffer), thread-safe to
/// use from several gemm() calls at once. The accessors are defined for
/// both contents in src/gemm/packed_weights.cpp.
template <class Data>
class WeightsHandle {
 public:
  WeightsHandle() = default;
  explicit WeightsHandle(std::shared_ptr<const Data> data) : data_(std::move(data)) {}

  bool empty() const noexcept { return data_ == nullptr; }
  int64_t n() const noexcept;  ///< output channels
  int64_t k() const noexcept;  ///< reduction length (inputs)
  /// One scale per output channel (a per-tensor scale is repeated N times).
  std::span<const float> scales() const noexcept;
  bool per_channel() const noexcept;
  /// sum over k of w[n][k], per output channel (zero-point compensation).
  std::span<const int32_t> column_sums() const noexcept;
  /// Bytes of the packed buffer the kernels read (weights + column sums),
  /// as used by `sparq bench` for its bandwidth bound.
  std::size_t packed_bytes() const noexcept;
  /// The ISA whose kernel layout these weights were packed for.
  Isa isa() const noexcept;

  const Data& data() const noexcept { return *data_; }

 private:
  std::shared_ptr<const Data> data_;
};
}  // namespace detail

/// Dense packed weights (pack_weights); the accessors are WeightsHandle's.
class PackedWeights : public detail::WeightsHandle<detail::PackedWeightsData> {
 public:
  using WeightsHandle::WeightsHandle;
};

/// Packs an N x K int8 weight matrix.
///   weights: element (n, k) at weights[n * ld + k] (out_in) or
///            weights[k * ld + n] (in_out); ld = 0 means dense (K or N).
///   scales:  empty (all 1), 1 value (per tensor) or N values (per channel);
///            each must be finite and > 0.
/// The layout is chosen for active_isa() at packing time; gemm() repacks on
/// the fly, never silently miscomputes, if the active ISA changed since.
/// Throws sparq::Error on null data, n or k < 1, ld too small, bad scales.
PackedWeights pack_weights(const int8_t* weights, int64_t n, int64_t k, WeightLayout layout,
                           int64_t ld = 0, std::span<const float> scales = {});

}  // namespace sparq
