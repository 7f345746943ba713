// Internal: the 64-bit FNV-1a checksum that ends every observer file
// (src/observe/observer.cpp). It catches accidental corruption, not
// tampering; tests/unit/hardening_files_test.cpp recomputes it to forge
// files whose payload is wrong but whose checksum is right.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace sparq::detail {

inline uint64_t fnv1a64(std::span<const std::byte> bytes) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64-bit offset basis
  for (std::byte b : bytes) {
    h ^= static_cast<uint64_t>(b);
    h *= 0x100000001b3ull;  // FNV 64-bit prime
  }
  return h;
}

}  // namespace sparq::detail
