// AVX2 depthwise row kernel (src/kernels/depthwise_kernels.hpp): per output
// pixel, 32 channels per pass in four int32 accumulators that stay in
// registers over every tap. Per tap pair and 8 channels: two 8-byte loads,
// one byte interleave (x[2p][c], x[2p+1][c]), one widening to int16, and
// one vpmaddwd against the [ch][2] weights, which sums the two taps of each
// channel exactly (2 * 255 * 128 < 2^31): 16 multiply-adds for two
// shuffles. Channels past the last multiple of 8 run the scalar formula.
#include <immintrin.h>

#include "kernels/depthwise_kernels.hpp"

namespace sparq::detail {
namespace {

inline __m256i pair_of_taps(const uint8_t* x0, const uint8_t* x1) noexcept {
  const __m128i a = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(x0));
  const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(x1));
  return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(a, b));
}

/// Channels c .. c + 8 * Blocks of the pixel whose taps are at x[t] + offset.
template <int Blocks>
inline void channels(const DepthwiseRowArgs& a, int64_t offset, int64_t c, int32_t* acc) noexcept {
  __m256i sum[Blocks];
  for (int j = 0; j < Blocks; ++j) {
    sum[j] =
        _mm256_sub_epi32(_mm256_setzero_si256(),
                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.zp_w + c + 8 * j)));
  }
  for (int64_t p = 0; p < a.pairs; ++p) {
    const uint8_t* x0 = a.x[2 * p] + offset + c;
    const uint8_t* x1 = a.x[2 * p + 1] + offset + c;
    const int16_t* w = a.w + (p * a.ch + c) * 2;
    for (int j = 0; j < Blocks; ++j) {
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 16 * j));
      sum[j] =
          _mm256_add_epi32(sum[j], _mm256_madd_epi16(pair_of_taps(x0 + 8 * j, x1 + 8 * j), wv));
    }
  }
  for (int j = 0; j < Blocks; ++j) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + c + 8 * j), sum[j]);
  }
}

}  // namespace

void depthwise_row_u8s16__avx2(const DepthwiseRowArgs& a) noexcept {
  for (int64_t q = 0; q < a.pixels; ++q) {
    const int64_t offset = q * a.x_step;
    int32_t* acc = a.acc + q * a.ch;
    int64_t c = 0;
    for (; c + 32 <= a.ch; c += 32) channels<4>(a, offset, c, acc);
    for (; c + 8 <= a.ch; c += 8) channels<1>(a, offset, c, acc);
    for (; c < a.ch; ++c) {
      int32_t sum = -a.zp_w[c];
      for (int64_t p = 0; p < a.pairs; ++p) {
        const int16_t* w = a.w + (p * a.ch + c) * 2;
        sum += int32_t{a.x[2 * p][offset + c]} * w[0] + int32_t{a.x[2 * p + 1][offset + c]} * w[1];
      }
      acc[c] = sum;
    }
  }
}

}  // namespace sparq::detail
