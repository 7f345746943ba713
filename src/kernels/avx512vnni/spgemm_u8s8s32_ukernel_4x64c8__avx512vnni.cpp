// AVX-512 VNNI direct 2:4 sparse microkernel for CPUs without VBMI
// (Cascade Lake): up to 4 rows x 64 columns, activations packed with kr = 8
// (tile [K/8][mr][8]). CPUs with VBMI use
// spgemm_u8s8s32_ukernel_16x64c64__avx512vbmi.cpp instead (vpermb over a
// 64-input window, 8 rows).
//
// Per step and 16-channel block the kernel reads 64 bytes of kept values
// (one zmm: a dword of 4 values per channel) and 16 index bytes, turns the
// index bytes into the vpshufb control [i0, i1, 4 + i2, 4 + i3] per channel
// (Index::make; independent of the row, so shared by the mr rows), and per
// row gathers each channel's 4 activation bytes out of the step's 8 bytes
// (broadcast to every qword) with one vpshufb, then one vpdpbusd against the
// values. The win over dense is bytes: 80 bytes per 16 channels x 8 inputs
// instead of 128, which is what bounds M = 1..8 when the weights come from
// L3/DRAM.
#include <immintrin.h>

#include <cstring>

#include "kernels/dispatch_rows.hpp"
#include "kernels/sparse_gemm_kernels.hpp"

namespace sparq::detail {
namespace {

// Index: a policy with `__m512i make(const int8_t* meta16)` returning the
// vpshufb control [i0, i1, 4 + i2, 4 + i3] of 16 channels.
template <int MR, class Index>
void ukernel(const SpgemmUkernelParams& p) noexcept {
  __m512i acc[MR][4];
  for (int i = 0; i < MR; ++i) {
    for (int b = 0; b < 4; ++b) acc[i][b] = _mm512_setzero_si512();
  }
  const Index index;
  const uint8_t* a = p.a;
  const int8_t* w = p.w;
  // 16 steps (5 KiB) ahead: covers L3/DRAM latency at the rate one core
  // consumes the stream; the panels are contiguous, so near the end of one
  // panel this prefetches the next.
  constexpr int64_t kPrefetch = 16 * 320;
  for (int64_t s = 0; s < p.steps; ++s) {
    for (int l = 0; l < 5; ++l) {
      _mm_prefetch(reinterpret_cast<const char*>(w + kPrefetch + 64 * l), _MM_HINT_T0);
    }
    __m512i act[MR];
    for (int i = 0; i < MR; ++i) {
      int64_t v;
      std::memcpy(&v, a + 8 * i, 8);
      act[i] = _mm512_set1_epi64(v);
    }
    for (int b = 0; b < 4; ++b) {
      const __m512i idx = index.make(w + 256 + 16 * b);
      const __m512i vals = _mm512_loadu_si512(w + 64 * b);
      for (int i = 0; i < MR; ++i) {
        acc[i][b] = _mm512_dpbusd_epi32(acc[i][b], _mm512_shuffle_epi8(act[i], idx), vals);
      }
    }
    a += MR * 8;
    w += 320;
  }
  const int nr = p.nr;
  __mmask16 mask[4];
  for (int b = 0; b < 4; ++b) {
    const int left = nr - 16 * b;
    mask[b] =
        left >= 16 ? __mmask16(0xFFFF) : (left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1u));
  }
  for (int i = 0; i < MR; ++i) {
    int32_t* c = p.c + i * p.ldc;
    if (p.col_sums != nullptr) {
      const __m512i zp = _mm512_set1_epi32(p.a_zero_point[i]);
      for (int b = 0; b < 4; ++b) {
        const __m512i cs = _mm512_loadu_si512(p.col_sums + 16 * b);
        acc[i][b] = _mm512_sub_epi32(acc[i][b], _mm512_mullo_epi32(zp, cs));
      }
    }
    for (int b = 0; b < 4; ++b) _mm512_mask_storeu_epi32(c + 16 * b, mask[b], acc[i][b]);
  }
}

struct BwIndex {
  __m512i make(const int8_t* meta16) const noexcept {
    // Control of the byte copy below: dword c of lane L takes byte 4L + c
    // of the 16 index bytes broadcast to every lane.
    const __m512i copy =
        _mm512_set_epi32(0x0F0F0F0F, 0x0E0E0E0E, 0x0D0D0D0D, 0x0C0C0C0C, 0x0B0B0B0B, 0x0A0A0A0A,
                         0x09090909, 0x08080808, 0x07070707, 0x06060606, 0x05050505, 0x04040404,
                         0x03030303, 0x02020202, 0x01010101, 0x00000000);
    // Word shifts: bytes 0/2 of a dword need m >> 0 / m >> 4 (words 0/1 by
    // 0 and 4), bytes 1/3 need m >> 2 / m >> 6 (words by 2 and 6).
    const __m512i even_shift = _mm512_set1_epi32(0x00040000);
    const __m512i odd_shift = _mm512_set1_epi32(0x00060002);
    const __m512i low2 = _mm512_set1_epi32(0x03030303);
    const __m512i group = _mm512_set1_epi32(0x04040000);
    // maskz with all lanes: the unmasked intrinsic trips GCC 12's
    // -Wmaybe-uninitialized on _mm512_undefined_epi32 (GCC bug 105593).
    const __m512i m = _mm512_maskz_broadcast_i32x4(
        __mmask16(0xFFFF), _mm_loadu_si128(reinterpret_cast<const __m128i*>(meta16)));
    const __m512i r = _mm512_shuffle_epi8(m, copy);  // m in the 4 bytes of its dword
    const __m512i even = _mm512_srlv_epi16(r, even_shift);
    const __m512i odd = _mm512_srlv_epi16(r, odd_shift);
    const __m512i f = _mm512_mask_blend_epi8(__mmask64(0xAAAAAAAAAAAAAAAAULL), even, odd);
    return _mm512_ternarylogic_epi32(f, low2, group, 0xEA);
  }
};

}  // namespace

void spgemm_u8s8s32_ukernel_4x64c8__avx512vnni(const SpgemmUkernelParams& p) noexcept {
  dispatch_rows<4>(p.mr, [&](auto rows) { ukernel<rows, BwIndex>(p); });
}

}  // namespace sparq::detail
