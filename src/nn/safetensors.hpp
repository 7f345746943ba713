// Internal: the safetensors container (parse with full validation, build).
// Used by src/nn/io.cpp, the `sparq inspect` command and the fuzzer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace sparq::nn::detail {

/// One tensor of a parsed file; `bytes` points into the caller's buffer and
/// has been checked to be exactly numel * dtype size bytes inside the data area.
struct StTensor {
  std::string dtype;  ///< "F32", "I8", ...
  std::vector<int64_t> shape;
  int64_t numel = 0;
  std::span<const std::byte> bytes;
  uint64_t offset = 0;  ///< begin offset in the data area
};

struct StFile {
  std::map<std::string, StTensor> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t header_bytes = 0;
};

/// Bytes per element of a safetensors dtype, 0 if unknown.
std::size_t st_dtype_size(const std::string& dtype);

/// Parses and validates a whole file image. `what` names the source in errors.
/// Throws sparq::Error for anything malformed; never reads outside `bytes`.
StFile parse_safetensors(std::span<const std::byte> bytes, const std::string& what);

/// A tensor to write: raw little-endian bytes of `dtype` and `shape`.
struct StOut {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;
};
std::vector<std::byte> build_safetensors(const std::vector<StOut>& tensors,
                                         const std::map<std::string, std::string>& metadata);

std::vector<std::byte> read_whole_file(const std::filesystem::path& path);

/// Typed copies of a parsed tensor (dtype must match, else sparq::Error).
std::vector<float> st_f32(const StTensor& t, const std::string& name, const std::string& what);
std::vector<int8_t> st_i8(const StTensor& t, const std::string& name, const std::string& what);

}  // namespace sparq::nn::detail
