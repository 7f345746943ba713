// FP32 microkernel, AVX2 + FMA: a 6 x 16 tile in 12 ymm accumulators (the
// classic shape for 16 ymm registers: 12 accumulators, 2 weight vectors and
// one broadcast). 12 independent vfmadd231ps per k cover two FMA pipes of
// latency 4-5; 2 loads + 6 broadcasts per 12 FMAs stay under the load ports.
// Partial tiles: rows by template parameter, columns by masked loads/stores
// of C and the bias (the packed panel is zero-padded).
// Two variants of one template: A packed as [kc][MR] tiles, or A read in
// place (the "direct" kernel: M row pointers lda apart, one broadcast per
// row and k, as XNNPACK's f32 GEMM does), which spares the driver the
// packing that dominated narrow products (N <= 128). Both run the same FMAs
// in the same order, so they give the same bits.
#include <immintrin.h>

#include "kernels/dispatch_rows.hpp"
#include "kernels/sgemm_kernels.hpp"

namespace sparq::detail {
namespace {

// Every loop over the tile's rows fully unrolled: GCC 12 otherwise keeps the
// accumulator arrays in memory too and stores them to the stack on every k
// step (measured: a quarter of the FMA peak).
#define SPARQ_UNROLL _Pragma("GCC unroll 16")

constexpr int kMR = 6;
constexpr int kNR = 16;

template <int M, bool kDirect>
void tile(const SgemmUkernelParams& p) noexcept {
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(p.nr), iota);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(p.nr - 8), iota);
  // Full-width tiles use plain loads and stores: vmaskmovps stores are
  // microcoded and slow on AMD cores.
  const bool full = p.nr == kNR;
  float* const c = p.c;  // locals: the stores below cannot change them
  const int64_t ldc = p.ldc;
  __m256 c0[M], c1[M];
  if (p.first) {
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
    if (p.bias != nullptr) {
      b0 = _mm256_maskload_ps(p.bias, m0);
      b1 = _mm256_maskload_ps(p.bias + 8, m1);
    }
    SPARQ_UNROLL
    for (int i = 0; i < M; ++i) {
      c0[i] = b0;
      c1[i] = b1;
    }
  } else if (full) {
    SPARQ_UNROLL
    for (int i = 0; i < M; ++i) {
      c0[i] = _mm256_loadu_ps(c + i * ldc);
      c1[i] = _mm256_loadu_ps(c + i * ldc + 8);
    }
  } else {
    SPARQ_UNROLL
    for (int i = 0; i < M; ++i) {
      c0[i] = _mm256_maskload_ps(c + i * ldc, m0);
      c1[i] = _mm256_maskload_ps(c + i * ldc + 8, m1);
    }
  }
  const float* w = p.w;
  const int64_t kc = p.kc;
  // Row i's A value of step k is at ar[i] + k * kStep: rows lda apart read
  // in place (direct: the broadcasts address [row + k * 4], so one counter
  // advances all rows), or one packed [kc][MR] tile.
  constexpr int64_t kStep = kDirect ? 1 : kMR;
  const int64_t row_step = kDirect ? p.lda : 1;
  const float* ar[M];
  SPARQ_UNROLL
  for (int i = 0; i < M; ++i) ar[i] = p.a + i * row_step;
  _Pragma("GCC unroll 4")  // fewer loop-counter updates per FMA
      for (int64_t k = 0; k < kc; ++k) {
    const __m256 w0 = _mm256_loadu_ps(w);
    const __m256 w1 = _mm256_loadu_ps(w + 8);
    SPARQ_UNROLL
    for (int i = 0; i < M; ++i) {
      const __m256 ai = _mm256_broadcast_ss(ar[i] + k * kStep);
      c0[i] = _mm256_fmadd_ps(ai, w0, c0[i]);
      c1[i] = _mm256_fmadd_ps(ai, w1, c1[i]);
    }
    w += kNR;
  }
  if (p.relu) {
    // zero first: max returns its second operand when either is NaN, so a
    // NaN propagates as in the scalar kernel's std::max(acc, 0).
    const __m256 zero = _mm256_setzero_ps();
    SPARQ_UNROLL
    for (int i = 0; i < M; ++i) {
      c0[i] = _mm256_max_ps(zero, c0[i]);
      c1[i] = _mm256_max_ps(zero, c1[i]);
    }
  }
  if (full) {
    SPARQ_UNROLL
    for (int i = 0; i < M; ++i) {
      _mm256_storeu_ps(c + i * ldc, c0[i]);
      _mm256_storeu_ps(c + i * ldc + 8, c1[i]);
    }
  } else {
    SPARQ_UNROLL
    for (int i = 0; i < M; ++i) {
      _mm256_maskstore_ps(c + i * ldc, m0, c0[i]);
      _mm256_maskstore_ps(c + i * ldc + 8, m1, c1[i]);
    }
  }
}

}  // namespace

void sgemm_f32_ukernel_6x16__avx2fma(const SgemmUkernelParams& p) noexcept {
  dispatch_rows<kMR>(p.mr, [&](auto rows) { tile<rows, false>(p); });
}

void sgemm_f32_ukernel_6x16__avx2fma_direct(const SgemmUkernelParams& p) noexcept {
  dispatch_rows<kMR>(p.mr, [&](auto rows) { tile<rows, true>(p); });
}

}  // namespace sparq::detail
