// Internal helpers shared by the N:M sources: walking the groups of a weight
// matrix in either layout, and choosing the kept elements of one group.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "sparq/sparse/mask.hpp"

namespace sparq::detail {

/// Calls f(o, g, p, r) for every group g of every output o, where p points to
/// the r (<= M, < M only for a partial last group) values of the group in
/// input order. out_in passes a pointer into the matrix; in_out gathers the
/// group into a small buffer and walks groups in the outer loop so that the
/// matrix is read row by row (sequentially).
/// Only groups [first, groups) are visited (the vectorised 2:4 paths hand
/// the partial last group to the generic code this way).
/// The largest group NMPattern allows (m <= 16): the size of for_each_group's
/// gather buffer and the bound of every loop over one group.
inline constexpr int kMaxGroup = 16;

template <class T, class F>
void for_each_group(const T* w, const WeightShape& s, int m, int64_t groups, F&& f,
                    int64_t first = 0) {
  const int64_t k = s.inputs;
  if (s.layout == WeightLayout::out_in) {
    for (int64_t o = 0; o < s.outputs; ++o) {
      const T* row = w + o * k;
      for (int64_t g = first; g < groups; ++g) {
        const int r = static_cast<int>(std::min<int64_t>(m, k - g * m));
        f(o, g, row + g * m, r);
      }
    }
  } else {
    T buf[kMaxGroup];
    for (int64_t g = first; g < groups; ++g) {
      const int r = static_cast<int>(std::min<int64_t>(m, k - g * m));
      const T* base = w + g * m * s.outputs;
      for (int64_t o = 0; o < s.outputs; ++o) {
        for (int j = 0; j < r; ++j) buf[j] = base[j * s.outputs + o];
        f(o, g, static_cast<const T*>(buf), r);
      }
    }
  }
}

/// |x| as a float for ranking (int8: -128 has magnitude 128).
inline float magnitude(float x) { return std::fabs(x); }
inline float magnitude(int8_t x) { return std::fabs(static_cast<float>(x)); }

/// Bit j set = keep element j of a full group of 4: element j's rank is the
/// number of elements that beat it (larger magnitude, or equal magnitude and
/// lower index); it is kept if its rank is < n. Branch-free so that the
/// compiler can keep it in registers. `bad` is set if a magnitude is NaN/Inf.
inline int keep_mask4(float x0, float x1, float x2, float x3, int n, int& bad) {
  const float a0 = std::fabs(x0), a1 = std::fabs(x1), a2 = std::fabs(x2), a3 = std::fabs(x3);
  constexpr float big = std::numeric_limits<float>::max();
  bad |= !(a0 <= big) | !(a1 <= big) | !(a2 <= big) | !(a3 <= big);
  const int c01 = a0 >= a1, c02 = a0 >= a2, c03 = a0 >= a3;
  const int c12 = a1 >= a2, c13 = a1 >= a3, c23 = a2 >= a3;
  const int r0 = 3 - c01 - c02 - c03;
  const int r1 = c01 + 2 - c12 - c13;
  const int r2 = c02 + c12 + 1 - c23;
  const int r3 = c03 + c13 + c23;
  return (r0 < n) | (r1 < n) << 1 | (r2 < n) << 2 | (r3 < n) << 3;
}

/// keep_mask4 of the group at p.
inline unsigned keep_bits4(const float* p, int n, bool& bad) {
  int any_bad = 0;
  const int bits = keep_mask4(p[0], p[1], p[2], p[3], n, any_bad);
  bad |= any_bad != 0;
  return static_cast<unsigned>(bits);
}

/// keep_bits4 for `count` full groups of 4 at once, written as one nibble
/// per byte of `out`. Element j of group g is pj[kStride * g]: out_in rows
/// pass p, p+1, p+2, p+3 with kStride = 4 (groups along the row); in_out
/// passes four input rows with kStride = 1 (one group per output). Written
/// so that the compiler vectorises it with the baseline ISA (SSE2, NEON):
/// the library's portable sources get no special flags. `bad` becomes
/// non-zero if a weight is NaN/Inf.
template <int kStride>
void keep_nibbles4(const float* p0, const float* p1, const float* p2, const float* p3,
                   int64_t count, int n, uint8_t* __restrict out, int& bad) {
  int any_bad = 0;
  for (int64_t g = 0; g < count; ++g) {
    out[g] = static_cast<uint8_t>(
        keep_mask4(p0[kStride * g], p1[kStride * g], p2[kStride * g], p3[kStride * g], n, any_bad));
  }
  bad |= any_bad;
}

/// keep_bits4 for any group of r <= 16 elements (O(r^2), same rule).
template <class T>
unsigned keep_bits(const T* p, int r, int n, bool& bad) {
  if constexpr (std::is_same_v<T, float>) {
    if (r == 4) return keep_bits4(p, n, bad);
  }
  float a[16];
  constexpr float big = std::numeric_limits<float>::max();
  for (int j = 0; j < r; ++j) {
    a[j] = magnitude(p[j]);
    bad |= !(a[j] <= big);
  }
  unsigned bits = 0;
  for (int j = 0; j < r; ++j) {
    int rank = 0;
    for (int i = 0; i < j; ++i) rank += a[i] >= a[j];
    for (int i = j + 1; i < r; ++i) rank += a[i] > a[j];
    bits |= static_cast<unsigned>(rank < n) << j;
  }
  return bits;
}

}  // namespace sparq::detail
