// INT8 GEMM: activations (M x K, u8 or s8) times packed weights (K x N),
// into one of three output stages.
//
//   C[i][n] = sum_k (A[i][k] - zp_a) * W[n][k]            (exact, int32)
//
// Accumulation is exact for every K the API accepts: no path saturates an
// int16 intermediate, and a K large enough to overflow int32
// (K * 255 * 128 > 2^31 - 1, i.e. K > 65,793 for u8) is split into chunks
// whose partial sums are combined in int64 before the output stage, or
// refused with sparq::Error for the raw int32 stage when the true sum does
// not fit (the contents of C are unspecified after that error). The
// requantizing stage takes saturate_int32(exact sum + bias), the
// dequantizing stage float(exact sum). pack_weights limits K to 2^24.
//
// s8 activations are handled exactly by shifting them by +128 while they
// are packed (a - zp = (a + 128) - (zp + 128)), so the inner loop is the
// same u8 x s8 kernel for both types.
//
// Results are bit-identical for every ISA and every thread count.
#pragma once

#include <concepts>
#include <cstdint>
#include <span>
#include <vector>

#include "sparq/gemm/packed_weights.hpp"
#include "sparq/quant/requantize.hpp"

namespace sparq {

/// Row-major activations: element (i, k) at data[i * ld + k]; ld >= k.
template <class T>
struct Activations {
  const T* data = nullptr;
  int64_t m = 0;
  int64_t k = 0;
  int64_t ld = 0;  ///< 0 means k (dense rows)
  int32_t zero_point = 0;
};
using ActivationsU8 = Activations<uint8_t>;
using ActivationsS8 = Activations<int8_t>;

/// Per-call options.
struct GemmOptions {
  int threads = 0;  ///< 0: the global setting (sparq::num_threads())
};

/// A residual input of the requantizing stage: the shortcut of a residual
/// block, fused into the convolution (or Linear) that produces the other
/// operand of the add, so the sum is formed in one pass with one rounding.
/// r is an M x N matrix of 8-bit values with its own zero point; each value
/// is brought into the accumulator's units and added with the bias, before
/// the stage's only rounding:
///   acc' = saturate_int32(acc + bias[n] +
///                         multiply_by_quantized_multiplier(r[i][n] - zero_point, multipliers[n]))
/// (acc the exact sum, one saturation), then the multiplier, zero point and
/// clamp as usual. For a residual of
/// scale s_r added to a GEMM whose accumulator has scale s_a * s_w[n]:
///   multipliers[n] = quantize_multiplier(s_r / (s_a * s_w[n]))
/// (usually > 1: a left shift; the residual then carries a rounding error
/// of at most half an accumulator unit, far below one output step). A ReLU
/// after the add is the stage's clamp_min, as for any fused ReLU.
struct ResidualInput {
  const void* data = nullptr;  ///< null: no residual; else uint8_t or int8_t, by is_signed
  bool is_signed = false;
  int64_t ld = 0;  ///< row stride in elements; 0 means N
  int32_t zero_point = 0;
  std::vector<QuantizedMultiplier> multipliers{};  ///< 1 (per tensor) or N
};

/// Output stage: requantize int32 accumulators to 8 bits with the fixed-point
/// arithmetic of requantize.hpp:
///   y = clamp(zp_out + multiply_by_quantized_multiplier(acc + bias[n], m[n]),
///             clamp_min, clamp_max)
/// A fused ReLU is clamp_min = output_zero_point; ReLU6 also sets clamp_max
/// to the quantized 6.0.
struct RequantizeStage {
  std::vector<QuantizedMultiplier> multipliers{};  ///< 1 (per tensor) or N (per channel)
  std::vector<int32_t> bias{};                     ///< empty or N, in accumulator units
  int32_t output_zero_point = 0;
  int32_t clamp_min = -128;  ///< must lie in the output type's range
  int32_t clamp_max = 127;
  ResidualInput residual{};  ///< optional residual add (see ResidualInput)
};

/// Output stage: dequantize to float:
///   y = acc * (activation_scale * weight_scale[n]) + bias[n], then ReLU if set.
struct DequantizeStage {
  float activation_scale = 1.0f;
  /// Per-row activation scales (per-token quantization of transformer
  /// activations): empty, or M values that replace activation_scale row by
  /// row (y[i][n] = acc * (activation_scales[i] * weight_scale[n]) + bias[n]).
  std::vector<float> activation_scales{};
  std::vector<float> bias{};  ///< empty or N
  bool relu = false;
};

/// Output stage: the raw exact int32 sums, C[i][n] = sum_k (A[i][k] - zp_a) * W[n][k]
/// (no bias, no rounding). Throws sparq::Error when a sum does not fit in
/// int32 (only possible for K > 65,793); the other stages take the exact sum.
struct Int32Output {};

class PackedSparseWeights;             // sparse_gemm.hpp
struct SparseGemmOptions;              // sparse_gemm.hpp
enum class SparsePath : std::uint8_t;  // sparse_gemm.hpp

/// The activation element types gemm() accepts: u8 or s8.
template <class T>
concept GemmActivationType = std::same_as<T, uint8_t> || std::same_as<T, int8_t>;

/// The weight handles gemm() accepts: dense (pack_weights) or 2:4 sparse
/// (pack_sparse_weights, sparse_gemm.hpp).
template <class W>
concept GemmWeights = std::same_as<W, PackedWeights> || std::same_as<W, PackedSparseWeights>;

/// The output stages and the element each writes: Int32Output -> int32_t,
/// RequantizeStage -> uint8_t or int8_t, DequantizeStage -> float.
template <class Stage, class Out>
concept GemmStageOutput = (std::same_as<Stage, Int32Output> && std::same_as<Out, int32_t>) ||
                          (std::same_as<Stage, RequantizeStage> &&
                           (std::same_as<Out, uint8_t> || std::same_as<Out, int8_t>)) ||
                          (std::same_as<Stage, DequantizeStage> && std::same_as<Out, float>);

/// Per weight kind: gemm()'s options and what it returns (dense: nothing;
/// sparse: the SparsePath that ran, for benchmarks and tests).
template <class W>
struct GemmTraits;
template <>
struct GemmTraits<PackedWeights> {
  using Options = GemmOptions;
  using Result = void;
};
template <>
struct GemmTraits<PackedSparseWeights> {
  using Options = SparseGemmOptions;
  using Result = SparsePath;
};

/// The GEMM: C (M x N, leading dimension ldc, 0: N) = stage(A x W).
///   gemm(a, w, Int32Output{}, c32, ldc);           // exact int32 sums
///   gemm(a, w, requant, c8, ldc);                  // uint8_t or int8_t
///   gemm(a, w, dequant, cf, ldc);                  // float
///   SparsePath ran = gemm(a, sparse_w, dequant, cf);  // 2:4 weights
/// `options` is GemmOptions for PackedWeights and SparseGemmOptions for
/// PackedSparseWeights. Any other combination (e.g. a DequantizeStage into
/// an int32_t*) does not compile: the constraints above name what is
/// expected. Throws sparq::Error naming the bad argument.
template <GemmActivationType T, GemmWeights W, class Stage, class Out>
requires GemmStageOutput<Stage, Out>
typename GemmTraits<W>::Result gemm(const Activations<T>& a, const W& w, const Stage& stage, Out* c,
                                    int64_t ldc = 0,
                                    const typename GemmTraits<W>::Options& options = {});

// --- the output stages on their own: an M x N block of exact int32 sums
// (row stride ld_acc; e.g. gemm()'s int32 output after a reduction such as a
// max pool, which commutes with every stage because each is non-decreasing
// in the sum) through the same kernels gemm() applies, so the results are
// bit-identical to what gemm() with that stage would have written. ld_out 0
// means n. Throws sparq::Error on the stage's or the sizes' errors.
void apply_stage(const int32_t* acc, int64_t m, int64_t n, int64_t ld_acc,
                 const RequantizeStage& stage, uint8_t* out, int64_t ld_out = 0);
void apply_stage(const int32_t* acc, int64_t m, int64_t n, int64_t ld_acc,
                 const RequantizeStage& stage, int8_t* out, int64_t ld_out = 0);
/// The dequantizing stage also needs the weights' scales (N values, as
/// PackedWeights::scales()).
void apply_stage(const int32_t* acc, int64_t m, int64_t n, int64_t ld_acc,
                 std::span<const float> weight_scales, const DequantizeStage& stage, float* out,
                 int64_t ld_out = 0);

/// Dynamic quantization (PyTorch's quantize_dynamic Linear in one call):
/// x (M x K float, leading dimension ldx, 0: K) is quantized on the fly to u8
/// with asymmetric qparams from its range (per tensor, or per row), multiplied
/// by the packed weights, and dequantized into y (M x N, ldy, 0: N) with the
/// optional bias (empty or N) and ReLU.
struct DynamicOptions {
  bool per_row = false;
  bool relu = false;
  int threads = 0;
};
void linear_dynamic(const float* x, int64_t m, int64_t ldx, const PackedWeights& w,
                    std::span<const float> bias, float* y, int64_t ldy = 0,
                    const DynamicOptions& options = {});

}  // namespace sparq
