// AVX2 direct 2:4 sparse microkernel: up to 4 rows x 8 columns, one step =
// 8 inputs, 4 kept values per channel.
//
// Exact like the dense AVX2 kernel (no vpmaddubsw: its int16 pair sums
// saturate): values are sign-extended to int16 and the gathered activations
// are produced directly as zero-extended int16 by vpshufb (control bytes
// 0x80 zero the high byte of every word), then vpmaddwd gives exact int32
// pair sums. Each channel's 4 products land in two int32 lanes (lo: channels
// 0-3, hi: 4-7), added once after the loop as in the dense kernel.
//
// The vpshufb controls come from the index bytes once per step (shared by
// the rows): each index byte is copied into its channel's 4 words, word t is
// multiplied by 2^(6 - 2t) so that index t sits in bits 6..7, then shifted
// down, masked, and or-ed with 0x8000 (+4 for the second group's words).
#include <immintrin.h>

#include <cstring>

#include "kernels/avx2/ukernel_4x8_avx2.hpp"
#include "kernels/sparse_gemm_kernels.hpp"

namespace sparq::detail {
namespace {

template <int MR>
void ukernel(const SpgemmUkernelParams& p) noexcept {
  __m256i lo[MR];
  __m256i hi[MR];
  for (int i = 0; i < MR; ++i) {
    lo[i] = _mm256_setzero_si256();
    hi[i] = _mm256_setzero_si256();
  }
  // Index byte of channel c into the low byte of its 4 words: lane 0 holds
  // channels 0-1 (lo) / 4-5 (hi), lane 1 channels 2-3 / 6-7.
  const __m256i rep_lo =
      _mm256_setr_epi8(0, -1, 0, -1, 0, -1, 0, -1, 1, -1, 1, -1, 1, -1, 1, -1,  //
                       2, -1, 2, -1, 2, -1, 2, -1, 3, -1, 3, -1, 3, -1, 3, -1);
  const __m256i rep_hi =
      _mm256_add_epi8(rep_lo, _mm256_setr_epi8(4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0,
                                               4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0));
  const __m256i mul = _mm256_setr_epi16(64, 16, 4, 1, 64, 16, 4, 1, 64, 16, 4, 1, 64, 16, 4, 1);
  const __m256i three = _mm256_set1_epi16(3);
  const __m256i high = _mm256_setr_epi16(
      -0x8000, -0x8000, -0x8000 + 4, -0x8000 + 4, -0x8000, -0x8000, -0x8000 + 4, -0x8000 + 4,
      -0x8000, -0x8000, -0x8000 + 4, -0x8000 + 4, -0x8000, -0x8000, -0x8000 + 4, -0x8000 + 4);
  const uint8_t* a = p.a;
  const int8_t* w = p.w;
  for (int64_t s = 0; s < p.steps; ++s) {
    _mm_prefetch(reinterpret_cast<const char*>(w + 16 * 40), _MM_HINT_T0);
    int64_t mv;
    std::memcpy(&mv, w + 32, 8);
    const __m256i meta = _mm256_set1_epi64x(mv);
    auto control = [&](__m256i rep) {
      // rep_lo/rep_hi index bytes 0..7; -1 (0xFF) has bit 7 set: zero.
      const __m256i m16 = _mm256_shuffle_epi8(meta, rep);
      const __m256i f = _mm256_srli_epi16(_mm256_mullo_epi16(m16, mul), 6);
      return _mm256_or_si256(_mm256_and_si256(f, three), high);
    };
    const __m256i c_lo = control(rep_lo);
    const __m256i c_hi = control(rep_hi);
    const __m256i wb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
    const __m256i w_lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(wb));
    const __m256i w_hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(wb, 1));
    for (int i = 0; i < MR; ++i) {
      int64_t v;
      std::memcpy(&v, a + 8 * i, 8);
      const __m256i ai = _mm256_set1_epi64x(v);
      lo[i] = _mm256_add_epi32(lo[i], _mm256_madd_epi16(w_lo, _mm256_shuffle_epi8(ai, c_lo)));
      hi[i] = _mm256_add_epi32(hi[i], _mm256_madd_epi16(w_hi, _mm256_shuffle_epi8(ai, c_hi)));
    }
    a += MR * 8;
    w += 40;
  }
  store_rows_4x8<MR>(lo, hi, p.nr, p.c, p.ldc, p.col_sums, p.a_zero_point);
}

}  // namespace

void spgemm_u8s8s32_ukernel_4x8c8__avx2(const SpgemmUkernelParams& p) noexcept {
  dispatch_rows_4(p.mr, [&](auto rows) { ukernel<decltype(rows)::value>(p); });
}

}  // namespace sparq::detail
