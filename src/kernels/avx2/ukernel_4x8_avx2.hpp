// The output half of the AVX2 8-column microkernels (dense gemm_u8s8s32_
// ukernel_6x8c4__avx2, 6 rows, and sparse spgemm_u8s8s32_ukernel_4x8c8__avx2,
// 4 rows): both keep each column's int32 sum in two halves (`lo`: columns
// 0-3, `hi`: 4-7, two lanes per column) and finish them the same way.
// Included only by files of this folder; internal linkage, so each includer
// compiles its own copy with its own flags (docs/design.md rule 1).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

// Every loop over a tile's rows is fully unrolled: GCC 12 otherwise keeps
// the accumulator arrays of a 6-row tile in memory and spills on every
// k-group (measured in gemm_u8s8s32_ukernel_6x8c4__avx2; the same holds for
// sgemm_f32_ukernel_6x16__avx2fma).
#define SPARQ_UNROLL_ROWS _Pragma("GCC unroll 16")

namespace sparq::detail {
namespace {

/// Adds the halves of each column, subtracts a_zero_point[i] * col_sums[j]
/// (when col_sums is not null) and stores nr (1..8) columns of MR rows.
template <int MR>
inline void store_rows_4x8(__m256i (&lo)[MR], __m256i (&hi)[MR], int nr, int32_t* c, int64_t ldc,
                           const int32_t* col_sums, const int32_t* a_zero_point) noexcept {
  // An empty asm per row that takes the sums in registers: without it GCC 12
  // keeps a 6-row tile's accumulators on the stack through the whole k loop
  // (the hadd below pairs lo[i] with hi[i] and its allocator gives up;
  // measured in gemm_u8s8s32_ukernel_6x8c4__avx2). Emits no instruction.
  SPARQ_UNROLL_ROWS
  for (int i = 0; i < MR; ++i) __asm__("" : "+x"(lo[i]), "+x"(hi[i]));
  const __m256i order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
  const __m256i cs = col_sums != nullptr
                         ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(col_sums))
                         : _mm256_setzero_si256();
  SPARQ_UNROLL_ROWS
  for (int i = 0; i < MR; ++i) {
    __m256i sum = _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(lo[i], hi[i]), order);
    if (col_sums != nullptr) {
      sum = _mm256_sub_epi32(sum, _mm256_mullo_epi32(_mm256_set1_epi32(a_zero_point[i]), cs));
    }
    int32_t* row = c + i * ldc;
    if (nr == 8) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(row), sum);
    } else {
      alignas(32) int32_t tmp[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), sum);
      std::memcpy(row, tmp, sizeof(int32_t) * static_cast<std::size_t>(nr));
    }
  }
}

/// Calls kernel(std::integral_constant<int, MR>) for mr = 1..4 (>= 4: 4).
template <class Kernel>
inline void dispatch_rows_4(int mr, Kernel&& kernel) noexcept {
  switch (mr) {
    case 1:
      return kernel(std::integral_constant<int, 1>());
    case 2:
      return kernel(std::integral_constant<int, 2>());
    case 3:
      return kernel(std::integral_constant<int, 3>());
    default:
      return kernel(std::integral_constant<int, 4>());
  }
}

}  // namespace
}  // namespace sparq::detail
