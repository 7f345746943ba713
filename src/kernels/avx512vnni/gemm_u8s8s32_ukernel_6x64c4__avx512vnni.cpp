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

#include "kernels/dispatch_rows.hpp"
#include "kernels/gemm_kernels.hpp"

namespace sparq::detail {
namespace {

inline __m512i broadcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

inline void store_row(const GemmUkernelParams& p, int i, const __mmask16* mask, __m512i r0,
                      __m512i r1, __m512i r2, __m512i r3) noexcept {
  if (p.col_sums != nullptr) {
    const __m512i zp = _mm512_set1_epi32(p.a_zero_point[i]);
    r0 = _mm512_sub_epi32(r0, _mm512_mullo_epi32(zp, _mm512_loadu_si512(p.col_sums)));
    r1 = _mm512_sub_epi32(r1, _mm512_mullo_epi32(zp, _mm512_loadu_si512(p.col_sums + 16)));
    r2 = _mm512_sub_epi32(r2, _mm512_mullo_epi32(zp, _mm512_loadu_si512(p.col_sums + 32)));
    r3 = _mm512_sub_epi32(r3, _mm512_mullo_epi32(zp, _mm512_loadu_si512(p.col_sums + 48)));
  }
  int32_t* c = p.c + i * p.ldc;
  _mm512_mask_storeu_epi32(c, mask[0], r0);
  _mm512_mask_storeu_epi32(c + 16, mask[1], r1);
  _mm512_mask_storeu_epi32(c + 32, mask[2], r2);
  _mm512_mask_storeu_epi32(c + 48, mask[3], r3);
}

// Named accumulators rather than an array: GCC 12 keeps an array of __m512i
// in memory and copies it every iteration, which halves the throughput.
template <int MR>
void ukernel(const GemmUkernelParams& p) noexcept {
  const __m512i z = _mm512_setzero_si512();
  __m512i c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;
  __m512i c20 = z, c21 = z, c22 = z, c23 = z, c30 = z, c31 = z, c32 = z, c33 = z;
  __m512i c40 = z, c41 = z, c42 = z, c43 = z, c50 = z, c51 = z, c52 = z, c53 = z;
  const uint8_t* a = p.a;
  const int8_t* w = p.w;
  const int64_t groups = p.kp / 4;
  // Prefetch distance: 16 groups (4 KiB) ahead, running into the next panel
  // when this one ends (panels are contiguous), so L3/DRAM latency is hidden
  // for the bandwidth-bound small-M shapes.
  constexpr int64_t kPrefetch = 16 * 256;
#define SPARQ_ROW(i)                                \
  if constexpr (MR > i) {                           \
    const __m512i ai = broadcast4(a + 4 * i);       \
    c##i##0 = _mm512_dpbusd_epi32(c##i##0, ai, w0); \
    c##i##1 = _mm512_dpbusd_epi32(c##i##1, ai, w1); \
    c##i##2 = _mm512_dpbusd_epi32(c##i##2, ai, w2); \
    c##i##3 = _mm512_dpbusd_epi32(c##i##3, ai, w3); \
  }
  // Share of the next panel to pull into L2: `per_group` lines per k-group.
  const char* pf = reinterpret_cast<const char*>(p.w_prefetch);
  const char* pf_end = pf + 64 * p.prefetch_lines;
  const int64_t per_group = groups > 0 ? (p.prefetch_lines + groups - 1) / groups : 0;
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t l = 0; l < per_group && pf < pf_end; ++l, pf += 64) {
      _mm_prefetch(pf, _MM_HINT_T1);
    }
    _mm_prefetch(reinterpret_cast<const char*>(w + kPrefetch), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(w + kPrefetch + 64), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(w + kPrefetch + 128), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(w + kPrefetch + 192), _MM_HINT_T0);
    const __m512i w0 = _mm512_loadu_si512(w);
    const __m512i w1 = _mm512_loadu_si512(w + 64);
    const __m512i w2 = _mm512_loadu_si512(w + 128);
    const __m512i w3 = _mm512_loadu_si512(w + 192);
    SPARQ_ROW(0)
    SPARQ_ROW(1)
    SPARQ_ROW(2)
    SPARQ_ROW(3)
    SPARQ_ROW(4)
    SPARQ_ROW(5)
    a += MR * 4;
    w += 256;
  }
#undef SPARQ_ROW
  __mmask16 mask[4];
  for (int j = 0; j < 4; ++j) {
    const int left = p.nr - 16 * j;
    mask[j] =
        left >= 16 ? __mmask16(0xFFFF) : (left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1u));
  }
  store_row(p, 0, mask, c00, c01, c02, c03);
  if constexpr (MR > 1) store_row(p, 1, mask, c10, c11, c12, c13);
  if constexpr (MR > 2) store_row(p, 2, mask, c20, c21, c22, c23);
  if constexpr (MR > 3) store_row(p, 3, mask, c30, c31, c32, c33);
  if constexpr (MR > 4) store_row(p, 4, mask, c40, c41, c42, c43);
  if constexpr (MR > 5) store_row(p, 5, mask, c50, c51, c52, c53);
}

}  // namespace

void gemm_u8s8s32_ukernel_6x64c4__avx512vnni(const GemmUkernelParams& p) noexcept {
  dispatch_rows<6>(p.mr, [&](auto rows) { ukernel<rows>(p); });
}

}  // namespace sparq::detail
