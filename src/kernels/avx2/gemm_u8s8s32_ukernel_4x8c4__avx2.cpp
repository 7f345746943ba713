// AVX2 microkernel: up to 4 rows x 8 columns, k in groups of 4.
//
// AVX2 has no u8 x s8 dot product that is exact: vpmaddubsw adds two
// u8*s8 products into a SATURATING int16 (255*127*2 > 32767), the trap that
// gives other libraries machine-dependent results. Here both operands are
// widened to int16 first (vpmovsxbw / vpmovzxbw) and multiplied with
// vpmaddwd, whose int32 pair sums (at most 2 * 255 * 128) are exact.
// One 32-byte k-group (8 columns x 4 k) becomes two ymm of int16 (columns
// 0-3 and 4-7); each accumulator lane holds half of a column's k-group, and
// the halves are added once, after the loop. Activations arrive already
// widened to int16 (gemm_pack_a_s16__avx2): one vpbroadcastq per row and
// k-group, a load-port operation, instead of a broadcast plus a shuffle.
#include <immintrin.h>

#include <cstring>

#include "kernels/avx2/ukernel_4x8_avx2.hpp"
#include "kernels/gemm_kernels.hpp"

namespace sparq::detail {
namespace {

template <int MR>
void ukernel(const GemmUkernelParams& p) noexcept {
  __m256i lo[MR];
  __m256i hi[MR];
  for (int i = 0; i < MR; ++i) {
    lo[i] = _mm256_setzero_si256();
    hi[i] = _mm256_setzero_si256();
  }
  const uint8_t* a = p.a;
  const int8_t* w = p.w;
  const int64_t groups = p.kp / 4;
  for (int64_t g = 0; g < groups; ++g) {
    _mm_prefetch(reinterpret_cast<const char*>(w + 2048), _MM_HINT_T0);
    const __m256i wb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
    const __m256i w_lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(wb));
    const __m256i w_hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(wb, 1));
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

void gemm_u8s8s32_ukernel_4x8c4__avx2(const GemmUkernelParams& p) noexcept {
  dispatch_rows_4(p.mr, [&](auto rows) { ukernel<decltype(rows)::value>(p); });
}

}  // namespace sparq::detail
