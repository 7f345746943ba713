// Small load/store helpers shared by the ARM GEMM microkernels
// (src/kernels/neon*/). Every function is `static`: each ISA-flagged file
// gets its own internal copy, so code built with -march=armv8-a and with
// +dotprod/+i8mm can never be merged by the linker (docs/design.md rule 1).
#pragma once

#include <arm_neon.h>

#include <cstdint>
#include <cstring>

namespace sparq::detail::neon {

// Loads `Bytes` (<= 16, known at compile time) bytes and zero-fills the rest
// of the register: the packed A tile of an mr < MR call is only mr rows
// long, and reading past it could touch the end of the buffer.
template <int Bytes>
static inline uint8x16_t load_u8x16(const uint8_t* p) {
  static_assert(Bytes > 0 && Bytes <= 16);
  if constexpr (Bytes == 16) {
    return vld1q_u8(p);
  } else if constexpr (Bytes == 8) {
    return vcombine_u8(vld1_u8(p), vdup_n_u8(0));
  } else {
    uint8_t tmp[16] = {};
    std::memcpy(tmp, p, Bytes);
    return vld1q_u8(tmp);
  }
}

// Stores the first n (<= 4 * Vecs) lanes of v[0..Vecs) to c.
template <int Vecs>
static inline void store_s32(int32_t* c, const int32x4_t* v, int n) {
  if (n == 4 * Vecs) {
    for (int q = 0; q < Vecs; ++q) vst1q_s32(c + 4 * q, v[q]);
    return;
  }
  int32_t tmp[4 * Vecs];
  for (int q = 0; q < Vecs; ++q) vst1q_s32(tmp + 4 * q, v[q]);
  std::memcpy(c, tmp, static_cast<std::size_t>(n) * sizeof(int32_t));
}

// Loads n (<= 4 * Vecs) int32 values into v[0..Vecs), zero-filling the rest.
template <int Vecs>
static inline void load_s32(const int32_t* src, int32x4_t* v, int n) {
  if (n == 4 * Vecs) {
    for (int q = 0; q < Vecs; ++q) v[q] = vld1q_s32(src + 4 * q);
    return;
  }
  int32_t tmp[4 * Vecs] = {};
  std::memcpy(tmp, src, static_cast<std::size_t>(n) * sizeof(int32_t));
  for (int q = 0; q < Vecs; ++q) v[q] = vld1q_s32(tmp + 4 * q);
}

}  // namespace sparq::detail::neon
