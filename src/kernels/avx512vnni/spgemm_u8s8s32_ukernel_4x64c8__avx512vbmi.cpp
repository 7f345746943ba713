// AVX-512 VNNI + VBMI direct 2:4 sparse microkernel: the index bytes become
// vpshufb controls in 3 ops per 16 channels:
//   vpmovzxwq       qword q gets the index bytes of channels 2q and 2q+1;
//   vpmultishiftqb  byte t of channel c's dword = its index byte >> 2t;
//   vpternlogd      keep the 2 index bits, add 4 for the second group.
// Compiled with the avx512vnni flags plus VBMI (pragma below); the table
// uses it only when the CPU reports VBMI. Body: spgemm_ukernel_4x64c8_avx512.inc.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512vbmi"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512vbmi")
// GCC 12 bug 105593: intrinsics built on _mm512_undefined_epi32() warn
// -Wmaybe-uninitialized once inlined under a target pragma.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "spgemm_ukernel_4x64c8_avx512.inc"

namespace sparq::detail {
namespace {

// Constants are built inside make() (the compiler hoists them out of the
// loop): member initializers would run in an implicit constructor that GCC
// compiles without the pragma's VBMI target.
struct VbmiIndex {
  __m512i make(const int8_t* meta16) const noexcept {
    const __m512i shifts = _mm512_set1_epi64(0x0E0C0A0806040200LL);
    const __m512i low2 = _mm512_set1_epi32(0x03030303);
    const __m512i group = _mm512_set1_epi32(0x04040000);
    const __m512i meta =
        _mm512_cvtepu16_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(meta16)));
    return _mm512_ternarylogic_epi32(_mm512_multishift_epi64_epi8(shifts, meta), low2, group, 0xEA);
  }
};

}  // namespace

void spgemm_u8s8s32_ukernel_4x64c8__avx512vbmi(const SpgemmUkernelParams& p) noexcept {
  dispatch_rows<VbmiIndex>(p);
}

}  // namespace sparq::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
