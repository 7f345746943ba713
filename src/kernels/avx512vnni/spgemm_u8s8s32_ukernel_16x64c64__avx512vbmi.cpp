// AVX-512 VNNI + VBMI direct 2:4 sparse microkernel: up to 16 rows x 64
// columns, activations packed with kr = 64 (tile [K/64][mr][64]).
//
// Per step (8 inputs) and 16-channel block the kernel reads 64 bytes of kept
// values (a dword of 4 values per channel) and 16 index bytes, and turns the
// index bytes into a vpermb control in 3 ops, shared by all rows:
//   vpmovzxwq       qword q gets the index bytes of channels 2q and 2q+1;
//   vpmultishiftqb  byte t of channel c's dword = its index byte >> 2t;
//   vpternlogd      keep the 2 index bits, add 4 for the second group and
//                   8 * (step within the 64-input window).
// Per row, one vpermb gathers each channel's 4 activation bytes out of the
// row's 64-input window (8 steps of input, read from the L1-resident tile) and one
// vpdpbusd multiplies them with the 4 kept values: 2 vector ops per 16
// channels x 8 inputs where the dense kernel spends 2 vpdpbusd. On Zen 4
// vpermb and vpdpbusd share a pipe: a pair costs ~1.7 vpdpbusd slots
// (bench_instruction_mix), so with the index ops shared by 16 rows the
// kernel ties with dense where multiplies are the limit, and wins by
// reading 0.625x the bytes where memory is (docs/sparse-gemm.md).
//
// Compiled with -mavx512vbmi on top of the avx512vnni flags (file name, see
// cmake/SparqIsa.cmake); the table uses it only when the CPU reports VBMI.

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "kernels/sparse_gemm_kernels.hpp"

namespace sparq::detail {
namespace {

constexpr int64_t kStepBytes = 320;  // 64 channels x (4 values + 1 index byte)
// K is walked in chunks of 64 steps (20 KiB of weights, held in L1): every
// pass of a multi-pass tile runs over the chunk before the next chunk, so
// the chunk is read from memory once and the later passes read L1, and
// memory is read at the rate of the whole tile rather than of one pass.
constexpr int64_t kChunkSteps = 64;
// The first pass of a chunk prefetches the next chunk into L2 (T1): one
// chunk ahead covers DRAM latency at any M (a chunk takes >= ~1 us).
constexpr int64_t kPrefetch = kChunkSteps * kStepBytes;

// The vpermb control of 16 channels at step j of the window: byte t of
// channel c = 8j + (t < 2 ? 0 : 4) + position t of c (2 bits each in the
// index byte). The constants are hoisted out of the loops by the compiler.
inline __m512i gather_control(const int8_t* meta16, int j) noexcept {
  const __m512i shifts = _mm512_set1_epi64(0x0E0C0A0806040200LL);
  const __m512i low2 = _mm512_set1_epi32(0x03030303);
  const __m512i offset = _mm512_set1_epi32(0x04040000 | (0x08080808 * j));
  const __m512i meta =
      _mm512_cvtepu16_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(meta16)));
  return _mm512_ternarylogic_epi32(_mm512_multishift_epi64_epi8(shifts, meta), low2, offset, 0xEA);
}

// One step j of the window for blocks [B0, B0 + NB). The activation
// windows are vpermb's memory operand (the tile is in L1): no register per
// row, so 16 rows fit next to 16 accumulators.
template <int MR, int NB, int B0>
inline void step(__m512i (&acc)[MR][NB], const uint8_t* win, const int8_t* w, int j) noexcept {
  const int8_t* ws = w + kStepBytes * j;
  auto block = [&](int b) {
    const __m512i ctrl = gather_control(ws + 256 + 16 * (B0 + b), j);
    const __m512i vals = _mm512_loadu_si512(ws + 64 * (B0 + b));
    for (int i = 0; i < MR; ++i) {
      const __m512i x = _mm512_permutexvar_epi8(ctrl, _mm512_loadu_si512(win + 64 * i));
      acc[i][b] = _mm512_dpbusd_epi32(acc[i][b], x, vals);
    }
  };
  if constexpr (MR <= 2) {
    // Memory-bound rows: a rolled block loop streamed 25-40% more bytes per
    // second than the fully unrolled one at N = K = 8192 (measured on Zen 4;
    // the unrolled form issues its loads in bursts).
#pragma GCC unroll 1
    for (int b = 0; b < NB; ++b) block(b);
  } else {
    for (int b = 0; b < NB; ++b) block(b);
  }
}

// Steps [0, steps) of a chunk for blocks [B0, B0 + NB): accumulators are
// loaded from and stored to acc_mem (MR rows x 64 int32), `a` and `w` point
// at the chunk.
template <int MR, int NB, int B0>
void pass(int32_t* acc_mem, const uint8_t* a, const int8_t* w, int64_t steps) noexcept {
  __m512i acc[MR][NB];
  for (int i = 0; i < MR; ++i) {
    for (int b = 0; b < NB; ++b) acc[i][b] = _mm512_load_si512(acc_mem + 64 * i + 16 * (B0 + b));
  }
  int64_t s = 0;
  for (; s + 8 <= steps; s += 8) {
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      if constexpr (B0 == 0) {
        const char* pf = reinterpret_cast<const char*>(w + kStepBytes * j + kPrefetch);
        for (int l = 0; l < 5; ++l) _mm_prefetch(pf + 64 * l, _MM_HINT_T1);
      }
      step<MR, NB, B0>(acc, a, w, j);
    }
    a += MR * 64;
    w += 8 * kStepBytes;
  }
  // Last, partial window: the packed activations are zero-padded to a whole
  // window, the weights end at `steps`.
  for (int j = 0; j < steps - s; ++j) step<MR, NB, B0>(acc, a, w, j);
  for (int i = 0; i < MR; ++i) {
    for (int b = 0; b < NB; ++b) _mm512_store_si512(acc_mem + 64 * i + 16 * (B0 + b), acc[i][b]);
  }
}

// 16 accumulators per pass: up to 4 rows x 4 blocks in one pass, 5 to 8 rows
// x 2 blocks in two, 9 to 16 rows x 1 block in four. More rows per pass
// share each block's gather control (3 ops) among more vpermb/vpdpbusd pairs.
template <int MR>
void tile(const SpgemmUkernelParams& p) noexcept {
  alignas(64) int32_t acc[MR * 64] = {};
  for (int64_t c0 = 0; c0 < p.steps; c0 += kChunkSteps) {
    const int64_t steps = std::min(kChunkSteps, p.steps - c0);
    const uint8_t* a = p.a + (c0 / 8) * MR * 64;
    const int8_t* w = p.w + c0 * kStepBytes;
    if constexpr (MR <= 4) {
      pass<MR, 4, 0>(acc, a, w, steps);
    } else if constexpr (MR <= 8) {
      pass<MR, 2, 0>(acc, a, w, steps);
      if (p.nr > 32) pass<MR, 2, 2>(acc, a, w, steps);
    } else {
      pass<MR, 1, 0>(acc, a, w, steps);
      if (p.nr > 16) pass<MR, 1, 1>(acc, a, w, steps);
      if (p.nr > 32) pass<MR, 1, 2>(acc, a, w, steps);
      if (p.nr > 48) pass<MR, 1, 3>(acc, a, w, steps);
    }
  }
  for (int b = 0; b < 4; ++b) {
    const int left = p.nr - 16 * b;
    if (left <= 0) break;
    const __mmask16 mask = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
    const __m512i cs =
        p.col_sums != nullptr ? _mm512_loadu_si512(p.col_sums + 16 * b) : _mm512_setzero_si512();
    for (int i = 0; i < MR; ++i) {
      __m512i v = _mm512_load_si512(acc + 64 * i + 16 * b);
      if (p.col_sums != nullptr) {
        v = _mm512_sub_epi32(v, _mm512_mullo_epi32(_mm512_set1_epi32(p.a_zero_point[i]), cs));
      }
      _mm512_mask_storeu_epi32(p.c + i * p.ldc + 16 * b, mask, v);
    }
  }
}

template <int... MR>
void dispatch(const SpgemmUkernelParams& p, std::integer_sequence<int, MR...>) noexcept {
  ((p.mr == MR + 1 ? tile<MR + 1>(p) : void()), ...);
}

}  // namespace

void spgemm_u8s8s32_ukernel_16x64c64__avx512vbmi(const SpgemmUkernelParams& p) noexcept {
  dispatch(p, std::make_integer_sequence<int, 16>());
}

}  // namespace sparq::detail
