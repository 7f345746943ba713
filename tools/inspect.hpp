// `sparq inspect` on a file image in memory: shared by the command
// (commands/inspect.cpp) and its fuzzer (fuzz/inspect_fuzzer.cpp).
#pragma once

#include <cstddef>
#include <cstdio>
#include <span>
#include <string>

namespace sparq::tool {

/// Validates `bytes` as a safetensors file (a sparq quantized model or
/// graph is loaded in full) and prints its description to `out`; returns the exit
/// status. Bad input throws sparq::Error; `what` names the source.
int inspect_bytes(std::span<const std::byte> bytes, const std::string& what, std::FILE* out);

}  // namespace sparq::tool
