// Packs activation rows for the AVX2 kernel as int16: the [kp/4][mr][4]
// tile of gemm_pack_a__scalar, each byte (plus the shift, mod 256) widened
// to an int16 in [0, 255]. Widening once here, M*K values, saves the kernel
// a vpmovzxbw per row, k-group and panel (M*N*K/32 of them): the kernel then
// broadcasts each row's 4 int16 with one load.
//
// Vectorised for kr = 4 (the AVX2 table's): 16 inputs of a row at a time,
// one load, add and vpmovzxbw, then each 4-input group's 8 bytes stored at
// its place in the tile (rows of one group are 8 bytes apart). A byte loop
// was a quarter of the GEMM's time at N = 64 (each packed value then feeds
// only 64 multiply-adds).
#include <immintrin.h>

#include <cstring>

#include "kernels/gemm_kernels.hpp"

namespace sparq::detail {

void gemm_pack_a_s16__avx2(const GemmPackAParams& p) noexcept {
  const int64_t groups = p.kp / p.kr;
  const int kr = p.kr;
  const int mr = p.mr;
  const __m128i shift = _mm_set1_epi8(static_cast<char>(p.shift));
  // Groups [0, vec_groups) of every row come from whole 16-byte loads that
  // stay inside the row's k bytes.
  const int64_t vec_groups = kr == 4 ? p.k / 16 * 4 : 0;
  const int64_t group_stride = static_cast<int64_t>(mr) * kr * 2;  // bytes
  for (int i = 0; i < mr; ++i) {
    const uint8_t* src = p.a + static_cast<int64_t>(i) * p.lda;
    uint8_t* dst = p.dst + static_cast<int64_t>(i) * kr * 2;
    for (int64_t g = 0; g < vec_groups; g += 4) {
      const __m128i b =
          _mm_add_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + g * 4)), shift);
      const __m256i v = _mm256_cvtepu8_epi16(b);
      const __m128i lo = _mm256_castsi256_si128(v);
      const __m128i hi = _mm256_extracti128_si256(v, 1);
      uint8_t* d = dst + g * group_stride;
      _mm_storel_epi64(reinterpret_cast<__m128i*>(d), lo);
      _mm_storeh_pd(reinterpret_cast<double*>(d + group_stride), _mm_castsi128_pd(lo));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(d + 2 * group_stride), hi);
      _mm_storeh_pd(reinterpret_cast<double*>(d + 3 * group_stride), _mm_castsi128_pd(hi));
    }
    for (int64_t g = vec_groups; g < groups; ++g) {
      int16_t v[16];
      for (int r = 0; r < kr; ++r) {
        const int64_t kk = g * kr + r;
        v[r] =
            kk < p.k ? static_cast<int16_t>(static_cast<uint8_t>(src[kk] + p.shift)) : int16_t{0};
      }
      std::memcpy(dst + g * group_stride, v, sizeof(int16_t) * kr);
    }
  }
}

}  // namespace sparq::detail
