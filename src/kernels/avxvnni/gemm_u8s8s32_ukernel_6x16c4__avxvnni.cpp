// AVX-VNNI microkernel (VEX vpdpbusd on ymm): up to 6 rows x 16 columns,
// k in groups of 4. Same shape as the AVX-512 kernel at half the width:
// 12 ymm accumulators, 2 ymm of weights per k-group, 1 broadcast.
// Untested on the development host (Zen 4 has AVX512-VNNI but not AVX-VNNI).
#include <immintrin.h>

#include <cstring>

#include "kernels/dispatch_rows.hpp"
#include "kernels/gemm_kernels.hpp"

namespace sparq::detail {
namespace {

template <int MR>
void ukernel(const GemmUkernelParams& p) noexcept {
  __m256i acc[MR][2];
  for (int i = 0; i < MR; ++i) {
    acc[i][0] = _mm256_setzero_si256();
    acc[i][1] = _mm256_setzero_si256();
  }
  const uint8_t* a = p.a;
  const int8_t* w = p.w;
  const int64_t groups = p.kp / 4;
  for (int64_t g = 0; g < groups; ++g) {
    _mm_prefetch(reinterpret_cast<const char*>(w + 2048), _MM_HINT_T0);
    const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
    const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 32));
    for (int i = 0; i < MR; ++i) {
      int32_t v;
      std::memcpy(&v, a + 4 * i, 4);
      const __m256i ai = _mm256_set1_epi32(v);
      acc[i][0] = _mm256_dpbusd_avx_epi32(acc[i][0], ai, w0);
      acc[i][1] = _mm256_dpbusd_avx_epi32(acc[i][1], ai, w1);
    }
    a += MR * 4;
    w += 64;
  }
  for (int i = 0; i < MR; ++i) {
    if (p.col_sums != nullptr) {
      const __m256i zp = _mm256_set1_epi32(p.a_zero_point[i]);
      for (int j = 0; j < 2; ++j) {
        const __m256i cs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.col_sums + 8 * j));
        acc[i][j] = _mm256_sub_epi32(acc[i][j], _mm256_mullo_epi32(zp, cs));
      }
    }
    int32_t* c = p.c + i * p.ldc;
    if (p.nr == 16) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c), acc[i][0]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + 8), acc[i][1]);
    } else {
      alignas(32) int32_t tmp[16];
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), acc[i][0]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 8), acc[i][1]);
      std::memcpy(c, tmp, sizeof(int32_t) * p.nr);
    }
  }
}

}  // namespace

void gemm_u8s8s32_ukernel_6x16c4__avxvnni(const GemmUkernelParams& p) noexcept {
  dispatch_rows<6>(p.mr, [&](auto rows) { ukernel<rows>(p); });
}

}  // namespace sparq::detail
