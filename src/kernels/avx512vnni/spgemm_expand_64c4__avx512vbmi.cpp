// AVX-512 VBMI expansion of a 64-channel sparse panel into the dense
// [k/4][64][4] panel of gemm_u8s8s32_ukernel_6x64c4__avx512vnni.
//
// Dense byte t (0..3) of a channel's dword in group g takes kept value 2g
// if the group's first index is t, value 2g + 1 if its second is t, else 0.
// Per 16 channels and group:
//   vpmultishiftqb  puts 4 * nibble_g(index byte) in bits 2..5 of every byte
//                   of the channel's dword (the index bytes were zero-extended
//                   to one dword per channel, so the bits shifted in are 0);
//   vpor/vpternlog  adds t in bits 0..1: a 6-bit vpermb index;
//   vpermb          looks up the 64-byte table kTable[g]: the in-dword source
//                   byte (2g or 2g + 1) or 0x80 (zero);
//   vpor            adds the dword's offset in its 128-bit lane;
//   vpshufb         moves the values (0x80 gives 0), one 64-byte store.
// About 5 vector ops per 64 dense bytes: against the 6x64 microkernel's 24
// vpdpbusd per 256 dense bytes and row tile, expansion costs
// ~2.5 / tiles of the multiply time (see docs/sparse-gemm.md).
//
// Compiled with -mavx512vbmi on top of the avx512vnni flags (file name, see
// cmake/SparqIsa.cmake); the table uses it only when the CPU reports VBMI.
#include <immintrin.h>

#include <cstdint>

#include "kernels/sparse_gemm_kernels.hpp"

namespace sparq::detail {
namespace {

struct Tables {
  alignas(64) int8_t t[2][64];
  constexpr Tables() : t{} {
    for (int g = 0; g < 2; ++g) {
      for (int e = 0; e < 16; ++e) {
        const int first = e & 3;
        const int second = e >> 2;
        for (int pos = 0; pos < 4; ++pos) {
          int8_t v = static_cast<int8_t>(0x80);
          if (pos == first) v = static_cast<int8_t>(2 * g);
          if (pos == second) v = static_cast<int8_t>(2 * g + 1);
          t[g][4 * e + pos] = v;
        }
      }
    }
  }
};
constexpr Tables kTables;

}  // namespace

void spgemm_expand_64c4__avx512vbmi(const SpgemmExpandParams& p) noexcept {
  // Bit offsets, per byte of a qword (channel 2q in bits 0..7, 2q+1 in
  // 32..39): group 0 reads from bit -2 (62: zeros above the byte), so bits
  // 2..5 of the result are the low nibble; group 1 reads from bit 2.
  const __m512i sh0 = _mm512_set1_epi64(0x1E1E1E1E3E3E3E3ELL);
  const __m512i sh1 = _mm512_set1_epi64(0x2222222202020202LL);
  const __m512i pos = _mm512_set1_epi32(0x03020100);
  const __m512i nib = _mm512_set1_epi32(0x3C3C3C3C);
  const __m512i lane_off = _mm512_set4_epi32(0x0C0C0C0C, 0x08080808, 0x04040404, 0);
  const __m512i t0 = _mm512_load_si512(kTables.t[0]);
  const __m512i t1 = _mm512_load_si512(kTables.t[1]);
  const int8_t* w = p.w;
  int8_t* d = p.dst;
  for (int64_t s = 0; s < p.steps; ++s) {
    for (int b = 0; b < 4; ++b) {
      const __m512i meta =
          _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 256 + 16 * b)));
      const __m512i vals = _mm512_loadu_si512(w + 64 * b);
      // (m << 2) keeps nibble 0 in bits 2..5; bits 0..1 come from the zeros.
      const __m512i i0 = _mm512_or_si512(_mm512_multishift_epi64_epi8(sh0, meta), pos);
      // (m >> 2): nibble 1 in bits 2..5, index bits of group 0 in 0..1.
      const __m512i i1 =
          _mm512_ternarylogic_epi32(_mm512_multishift_epi64_epi8(sh1, meta), nib, pos, 0xEA);
      const __m512i c0 = _mm512_or_si512(_mm512_permutexvar_epi8(i0, t0), lane_off);
      const __m512i c1 = _mm512_or_si512(_mm512_permutexvar_epi8(i1, t1), lane_off);
      _mm512_storeu_si512(d + 64 * b, _mm512_shuffle_epi8(vals, c0));
      _mm512_storeu_si512(d + 256 + 64 * b, _mm512_shuffle_epi8(vals, c1));
    }
    w += 320;
    d += 512;
  }
}

}  // namespace sparq::detail
