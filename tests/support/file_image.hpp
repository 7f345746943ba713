// The bytes of a file in the safetensors framing that sparq's .safetensors
// and .sparq files use: the header's length as an 8-byte little-endian
// integer, the JSON header text, then the data area. The file tests build
// malformed files with it (a bad header, a short data area, ...).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

namespace sparq::testing {

inline std::vector<std::byte> file_image(std::string_view header, std::span<const std::byte> data) {
  std::vector<std::byte> out(8 + header.size());
  const uint64_t n = header.size();  // little-endian hosts only, like the library
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

}  // namespace sparq::testing
