// FP32 microkernel, AVX-512F: a 14 x 32 tile in 28 zmm accumulators. Per k
// it loads two zmm of the weight panel and broadcasts 14 activations, for 28
// vfmadd231ps: enough independent chains to cover the FMA latency on a core
// with two 512-bit FMA pipes (Intel server) as on one (Zen 4), and loads
// (2 + 14 per 28 FMAs) well below what either core can issue.
// Partial tiles: the row count is a template parameter (no branch in the k
// loop); partial columns use masked loads and stores of C and the bias (the
// packed panel is zero-padded, so the k loop always computes all 32).
#include <immintrin.h>

#include "kernels/dispatch_rows.hpp"
#include "kernels/sgemm_kernels.hpp"

namespace sparq::detail {
namespace {

// Every loop over the tile's rows fully unrolled: GCC 12 otherwise keeps the
// accumulator arrays in memory too and stores them to the stack on every k
// step (measured on the AVX2 twin: a quarter of the FMA peak).
#define SPARQ_UNROLL _Pragma("GCC unroll 16")

constexpr int kMR = 14;
constexpr int kNR = 32;

template <int M>
void tile(const SgemmUkernelParams& p) noexcept {
  const int nr = p.nr;
  const __mmask16 m0 = nr >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nr) - 1u);
  const __mmask16 m1 = nr >= 32  ? __mmask16(0xFFFF)
                       : nr > 16 ? __mmask16((1u << (nr - 16)) - 1u)
                                 : __mmask16(0);
  float* const c = p.c;  // locals: the stores below cannot change them
  const int64_t ldc = p.ldc;
  __m512 c0[M], c1[M];
  if (p.first) {
    __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
    if (p.bias != nullptr) {
      b0 = _mm512_maskz_loadu_ps(m0, p.bias);
      b1 = _mm512_maskz_loadu_ps(m1, p.bias + 16);
    }
    SPARQ_UNROLL
    for (int i = 0; i < M; ++i) {
      c0[i] = b0;
      c1[i] = b1;
    }
  } else {
    SPARQ_UNROLL
    for (int i = 0; i < M; ++i) {
      c0[i] = _mm512_maskz_loadu_ps(m0, c + i * ldc);
      c1[i] = _mm512_maskz_loadu_ps(m1, c + i * ldc + 16);
    }
  }
  const float* a = p.a;
  const float* w = p.w;
  const int64_t kc = p.kc;
  _Pragma("GCC unroll 4")  // fewer loop-counter updates per FMA
      for (int64_t k = 0; k < kc; ++k) {
    const __m512 w0 = _mm512_loadu_ps(w);
    const __m512 w1 = _mm512_loadu_ps(w + 16);
    SPARQ_UNROLL
    for (int i = 0; i < M; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      c0[i] = _mm512_fmadd_ps(ai, w0, c0[i]);
      c1[i] = _mm512_fmadd_ps(ai, w1, c1[i]);
    }
    a += kMR;
    w += kNR;
  }
  if (p.relu) {
    // zero first: max returns its second operand when either is NaN, so a
    // NaN propagates as in the scalar kernel's std::max(acc, 0).
    const __m512 zero = _mm512_setzero_ps();
    SPARQ_UNROLL
    for (int i = 0; i < M; ++i) {
      c0[i] = _mm512_max_ps(zero, c0[i]);
      c1[i] = _mm512_max_ps(zero, c1[i]);
    }
  }
  SPARQ_UNROLL
  for (int i = 0; i < M; ++i) {
    _mm512_mask_storeu_ps(c + i * ldc, m0, c0[i]);
    _mm512_mask_storeu_ps(c + i * ldc + 16, m1, c1[i]);
  }
}

}  // namespace

void sgemm_f32_ukernel_14x32__avx512f(const SgemmUkernelParams& p) noexcept {
  dispatch_rows<kMR>(p.mr, [&](auto rows) { tile<rows>(p); });
}

}  // namespace sparq::detail
