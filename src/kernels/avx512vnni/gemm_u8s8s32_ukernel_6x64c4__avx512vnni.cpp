// AVX-512 VNNI microkernel: up to 6 rows x 64 columns, k in groups of 4.
//
// Register tile: 6 x 4 zmm accumulators (24), 4 zmm of weights per k-group
// (one 256-byte group of the packed panel, loaded once and used by every row),
// one broadcast register: 29 of 32 zmm. Per k-group: 4 loads + mr broadcasts
// feed 4*mr vpdpbusd. Activations are u8 (s8 was shifted while packing), so
// the loop is a pure vpdpbusd stream. Rows 1..6 are separate instantiations:
// a 1-row call (M = 1, bandwidth bound) does no wasted multiplies.
#include <immintrin.h>

#include <cstring>

#include "kernels/gemm_kernels.hpp"

namespace sparq::detail {
namespace {

inline __m512i broadcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

template <int MR>
void ukernel(const GemmUkernelParams& p) noexcept {
  __m512i acc[MR][4];
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_si512();
  }
  const uint8_t* a = p.a;
  const int8_t* w = p.w;
  const int64_t groups = p.kp / 4;
  // Prefetch distance: 16 groups (4 KiB) ahead, covering the next panel when
  // this one ends (panels are contiguous), so DRAM/L3 latency is hidden for
  // the bandwidth-bound small-M shapes.
  constexpr int64_t kPrefetch = 16 * 256;
  for (int64_t g = 0; g < groups; ++g) {
    _mm_prefetch(reinterpret_cast<const char*>(w + kPrefetch), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(w + kPrefetch + 64), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(w + kPrefetch + 128), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(w + kPrefetch + 192), _MM_HINT_T0);
    const __m512i w0 = _mm512_loadu_si512(w);
    const __m512i w1 = _mm512_loadu_si512(w + 64);
    const __m512i w2 = _mm512_loadu_si512(w + 128);
    const __m512i w3 = _mm512_loadu_si512(w + 192);
    for (int i = 0; i < MR; ++i) {
      const __m512i ai = broadcast4(a + 4 * i);
      acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], ai, w0);
      acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], ai, w1);
      acc[i][2] = _mm512_dpbusd_epi32(acc[i][2], ai, w2);
      acc[i][3] = _mm512_dpbusd_epi32(acc[i][3], ai, w3);
    }
    a += MR * 4;
    w += 256;
  }
  const int nr = p.nr;
  __mmask16 mask[4];
  for (int j = 0; j < 4; ++j) {
    const int left = nr - 16 * j;
    mask[j] = left >= 16 ? __mmask16(0xFFFF)
                         : (left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1u));
  }
  for (int i = 0; i < MR; ++i) {
    int32_t* c = p.c + i * p.ldc;
    if (p.col_sums != nullptr) {
      const __m512i zp = _mm512_set1_epi32(p.a_zero_point[i]);
      for (int j = 0; j < 4; ++j) {
        const __m512i cs = _mm512_loadu_si512(p.col_sums + 16 * j);
        acc[i][j] = _mm512_sub_epi32(acc[i][j], _mm512_mullo_epi32(zp, cs));
      }
    }
    for (int j = 0; j < 4; ++j) _mm512_mask_storeu_epi32(c + 16 * j, mask[j], acc[i][j]);
  }
}

}  // namespace

void gemm_u8s8s32_ukernel_6x64c4__avx512vnni(const GemmUkernelParams& p) noexcept {
  switch (p.mr) {
    case 1: ukernel<1>(p); break;
    case 2: ukernel<2>(p); break;
    case 3: ukernel<3>(p); break;
    case 4: ukernel<4>(p); break;
    case 5: ukernel<5>(p); break;
    default: ukernel<6>(p); break;
  }
}

}  // namespace sparq::detail
