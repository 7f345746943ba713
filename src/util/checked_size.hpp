// Internal: the one place where sparq multiplies or adds sizes taken from a
// caller or a file. Each product is checked against a documented limit
// (docs/reliability.md, "Limits") before anything is allocated or indexed,
// so an absurd shape is a sparq::Error naming the argument instead of a
// wrapped product, a heap overflow or a std::length_error / bad_alloc.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "sparq/error.hpp"

namespace sparq::detail {

/// Largest element count of one tensor (and so of any one dimension):
/// 2^48, far beyond any memory yet small enough that element count times
/// element size (at most 8 bytes) and byte offsets never approach 2^63.
inline constexpr uint64_t kMaxElements = uint64_t{1} << 48;
/// Largest byte size of one buffer sparq computes from sizes: 2^51.
inline constexpr uint64_t kMaxBytes = uint64_t{1} << 51;
/// Largest file sparq reads (loaders read the whole file into memory): 2^40
/// bytes (1 TiB).
inline constexpr uint64_t kMaxFileBytes = uint64_t{1} << 40;

/// sparq::Error "<what>: a <op> b exceeds the limit of <limit> (2^k)".
[[noreturn]] inline void fail_over_limit(const char* what, uint64_t a, char op, uint64_t b,
                                         uint64_t limit) {
  fail("{}: {} {} {} exceeds the limit of {} (2^{})", what, a, op, b, limit,
       std::bit_width(limit) - 1);
}

/// a * b, or sparq::Error "<what>: a x b exceeds <limit>" when the product
/// is above `limit` (or wraps).
inline uint64_t checked_mul(uint64_t a, uint64_t b, const char* what,
                            uint64_t limit = kMaxElements) {
  uint64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r) || r > limit) fail_over_limit(what, a, 'x', b, limit);
  return r;
}

/// a + b with the same check.
inline uint64_t checked_add(uint64_t a, uint64_t b, const char* what,
                            uint64_t limit = kMaxElements) {
  uint64_t r = 0;
  if (__builtin_add_overflow(a, b, &r) || r > limit) fail_over_limit(what, a, '+', b, limit);
  return r;
}

/// A signed extent as an unsigned count: sparq::Error unless
/// min_extent <= v <= kMaxElements.
inline uint64_t checked_extent(int64_t v, const char* what, int64_t min_extent = 0) {
  if (v < min_extent || static_cast<uint64_t>(v) > kMaxElements) {
    fail("{}: extent {} must be in [{}, {}] (2^48)", what, v, min_extent, kMaxElements);
  }
  return static_cast<uint64_t>(v);
}

/// Element count of a shape: every extent in [min_extent, 2^48], the
/// product at most 2^48. `what` names the argument in the error.
inline uint64_t checked_count(std::span<const int64_t> shape, const char* what,
                              int64_t min_extent = 0) {
  uint64_t n = 1;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < min_extent || static_cast<uint64_t>(shape[d]) > kMaxElements) {
      fail("{}: shape[{}] is {}; expected {} <= extent <= {} (2^48)", what, d, shape[d], min_extent,
           kMaxElements);
    }
    uint64_t r = 0;
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(shape[d]), &r) || r > kMaxElements) {
      fail("{}: the shape's element count exceeds the limit of {} (2^48) at dimension {}", what,
           kMaxElements, d);
    }
    n = r;
  }
  return n;
}

}  // namespace sparq::detail
