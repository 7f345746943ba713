// AVX-512 VNNI direct 2:4 sparse microkernel for CPUs without VBMI
// (Cascade Lake): the index bytes become vpshufb controls with AVX-512BW
// word shifts (5 ops per 16 channels instead of VBMI's 3). Body:
// spgemm_ukernel_4x64c8_avx512.inc.
#include "spgemm_ukernel_4x64c8_avx512.inc"

namespace sparq::detail {
namespace {

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
  dispatch_rows<BwIndex>(p);
}

}  // namespace sparq::detail
