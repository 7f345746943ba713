// Kernels of the transformer's FP32 element-wise and row operators: GELU
// (erf and tanh forms), tanh, exp, softmax rows and LayerNorm rows
// (include/sparq/nn/transformer.hpp runs them).
//
// Plain functions on plain arguments (docs/design.md rule 1). Each ISA folder
// has one file, elementwise_f32__<isa>.cpp; the SIMD ones instantiate the
// shared templates of src/kernels/elementwise_simd.inc with their own vector
// type, and src/nn/elementwise_kernels.cpp puts them in a table per ISA.
//
// The scalar reference (src/kernels/reference/elementwise_f32__reference.cpp)
// is the definition: it calls std::erf, std::tanh and std::exp and sums in
// double. The SIMD kernels replace those with polynomials evaluated in
// float with FMA, so they are NOT bit-identical to it: each stays within a
// few float ulps of the reference (bounds measured and asserted in
// tests/unit/elementwise_kernels_test.cpp):
//   exp      Cephes' degree-5 polynomial after range reduction by ln 2,
//            scaled by 2^n in two steps so results down to the denormals
//            and up to overflow (inf) come out right;
//   erf      Norbert Juffa's minimax polynomials (about 1 ulp): an odd
//            polynomial for |z| <= 0.9277 and 1 - exp(poly(|z|)) above,
//            whose exp(poly) is erfc(|z|) itself, so GELU's 1 + erf(z) for
//            negative z is computed without cancellation;
//   tanh     Cephes' odd polynomial below |x| = 0.625, (1 - e) / (1 + e)
//            with e = exp(-2|x|) above;
//   GELU (tanh form)  0.5 x (1 + tanh(u)) computed as x / (1 + exp(-2u)),
//            the same function without the cancellation of 1 + tanh(u) for
//            negative u.
// NaN in gives NaN out, +-inf give the limits, as the reference (including
// GELU(-inf) = NaN, from -inf * 0, as the definition's formula gives).
//
// Kernels are noexcept, validate nothing, need no alignment and accept n = 0.
#pragma once

#include <cstddef>

#include "sparq/isa.hpp"

namespace sparq::detail {

/// y[i] = f(x[i]) for i < n; x == y (in place) is allowed.
using UnaryF32 = void(const float* x, float* y, std::size_t n) noexcept;
using UnaryF32Fn = UnaryF32*;

/// Softmax of `rows` rows of n floats, in place:
///   v = x * scale + bias (bias: n floats shared by every row, or nullptr)
///   x = exp(v - max(v)) / sum(exp(v - max(v)))
/// The sum is accumulated in double. A row whose v is all -inf gives NaN
/// (as PyTorch); Attention passes its 1/sqrt(d) and its additive mask here
/// so the scores are read once.
using SoftmaxRows = void(float* x, std::size_t rows, std::size_t n, float scale,
                         const float* bias) noexcept;
using SoftmaxRowsFn = SoftmaxRows*;

/// LayerNorm of `rows` rows of n floats: y = (x - mean) / sqrt(var + eps) *
/// weight + bias, mean and (biased) variance accumulated in double over two
/// passes, the output line in double too, rounded once to float. x == y is
/// allowed.
struct LayerNormRowsArgs {
  const float* x;
  float* y;
  std::size_t rows;
  std::size_t n;
  const float* weight;  // [n]
  const float* bias;    // [n]
  float eps;
};
using LayerNormRows = void(const LayerNormRowsArgs& args) noexcept;
using LayerNormRowsFn = LayerNormRows*;

struct ElementwiseKernels {
  const char* name;  // e.g. "avx2", for diagnostics and benchmarks
  UnaryF32Fn exp;
  UnaryF32Fn tanh;
  UnaryF32Fn gelu_erf;   // x * 0.5 * (1 + erf(x / sqrt(2)))
  UnaryF32Fn gelu_tanh;  // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
  SoftmaxRowsFn softmax_rows;
  LayerNormRowsFn layer_norm_rows;
};

/// The kernels for `isa` (the next lower table for ISAs without their own:
/// VNNI, AMX, dot products add nothing to float math). Callers look this up
/// once per operator call.
const ElementwiseKernels& elementwise_kernels(Isa isa) noexcept;

// Naming: <op>_f32__<isa> (docs/design.md rule 4).
#define SPARQ_DECLARE_ELEMENTWISE_KERNELS(isa)                                         \
  UnaryF32 exp_f32__##isa, tanh_f32__##isa, gelu_erf_f32__##isa, gelu_tanh_f32__##isa; \
  SoftmaxRows softmax_rows_f32__##isa;                                                 \
  LayerNormRows layer_norm_rows_f32__##isa;

SPARQ_DECLARE_ELEMENTWISE_KERNELS(reference)
SPARQ_DECLARE_ELEMENTWISE_KERNELS(avx2)
SPARQ_DECLARE_ELEMENTWISE_KERNELS(avx512)

#undef SPARQ_DECLARE_ELEMENTWISE_KERNELS

}  // namespace sparq::detail
