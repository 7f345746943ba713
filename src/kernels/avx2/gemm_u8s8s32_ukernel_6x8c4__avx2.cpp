// AVX2 microkernel: up to 6 rows x 8 columns, k in groups of 4.
//
// AVX2 has no u8 x s8 dot product that is exact: vpmaddubsw adds two
// u8*s8 products into a SATURATING int16 (255*127*2 > 32767), the trap that
// gives other libraries machine-dependent results. Here both operands are
// widened to int16 first and multiplied with vpmaddwd, whose int32 pair sums
// (at most 2 * 255 * 128) are exact. Activations arrive already widened
// (gemm_pack_a_s16__avx2): one vpbroadcastq of 4 int16 per row and k-group,
// a load-port operation. The weights stay one byte each in memory (the
// packed model's size) and are widened here, one vpmovsxbw from memory per
// 4 columns x 4 k, which on Zen 3 issues beside the multiplies at no
// measured cost. Each accumulator lane holds half of a column's k-group
// (`lo`: columns 0-3, `hi`: 4-7); the halves are added once, after the loop.
//
// Why 6 rows: vpmaddwd has no accumulate, so every multiply also costs a
// vpaddd, and the 12 accumulators of 6 rows x 2 halves, the two widened
// weight registers, the broadcast and the product fill the 16 ymm exactly.
// Per k-group that is 12 vpmaddwd + 12 vpaddd against 2 widenings and 8
// loads, where 4 rows gave 8 + 8 against a 32-byte load, an extract and two
// register widenings (shuffle-port work, amortised over fewer rows).
// docs/gemm.md "AVX2" has the measurements.
#include <immintrin.h>

#include <cstring>

#include "kernels/avx2/ukernel_4x8_avx2.hpp"
#include "kernels/dispatch_rows.hpp"
#include "kernels/gemm_kernels.hpp"

namespace sparq::detail {
namespace {

template <int MR>
void ukernel(const GemmUkernelParams& p) noexcept {
  __m256i lo[MR];
  __m256i hi[MR];
  SPARQ_UNROLL_ROWS
  for (int i = 0; i < MR; ++i) {
    lo[i] = _mm256_setzero_si256();
    hi[i] = _mm256_setzero_si256();
  }
  const uint8_t* a = p.a;
  const int8_t* w = p.w;
  const int64_t groups = p.kp / 4;
  for (int64_t g = 0; g < groups; ++g) {
    _mm_prefetch(reinterpret_cast<const char*>(w + 2048), _MM_HINT_T0);
    const __m256i w_lo = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
    const __m256i w_hi =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 16)));
    SPARQ_UNROLL_ROWS
    for (int i = 0; i < MR; ++i) {
      int64_t v;
      std::memcpy(&v, a + 8 * i, 8);
      const __m256i ai = _mm256_set1_epi64x(v);
      lo[i] = _mm256_add_epi32(lo[i], _mm256_madd_epi16(w_lo, ai));
      hi[i] = _mm256_add_epi32(hi[i], _mm256_madd_epi16(w_hi, ai));
    }
    a += MR * 8;  // 4 int16 per row
    w += 32;
  }
  store_rows_4x8<MR>(lo, hi, p.nr, p.c, p.ldc, p.col_sums, p.a_zero_point);
}

}  // namespace

void gemm_u8s8s32_ukernel_6x8c4__avx2(const GemmUkernelParams& p) noexcept {
  dispatch_rows<6>(p.mr, [&](auto rows) { ukernel<decltype(rows)::value>(p); });
}

}  // namespace sparq::detail
