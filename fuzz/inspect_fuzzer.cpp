// libFuzzer target: `sparq inspect` (tools/commands/inspect.cpp) on
// arbitrary bytes: the safetensors parser, the quantized model loader when
// the file says it is one, and every statistic inspect prints.
//
// Contract: any input is printed or throws sparq::Error; the output goes to
// /dev/null.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>

#include "inspect.hpp"
#include "sparq/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static std::FILE* null = std::fopen("/dev/null", "w");
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    (void)sparq::tool::inspect_bytes(bytes, "fuzz", null);
  } catch (const sparq::Error&) {
    // the documented outcome for a bad file
  }
  return 0;
}
