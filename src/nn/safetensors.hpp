// Internal: the safetensors container (parse with full validation, build).
// Defined in src/nn/safetensors.cpp; used by src/nn/model_file.cpp, the
// `sparq inspect` command and the fuzzers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
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
/// Throws sparq::Error for anything malformed (bad JSON, a duplicate tensor
/// name or __metadata__, offsets that overlap, leave a gap or leave bytes
/// after the last tensor, sizes beyond util/checked_size.hpp's limits);
/// never reads outside `bytes`.
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

/// Deepest bracket nesting of a JSON text (strings skipped). Headers are
/// rejected above a small depth before nlohmann parses them, so hostile
/// input cannot make any recursive code run deep.
int json_depth(std::string_view text);

/// nlohmann::json::parse without exceptions (a discarded value when the
/// text is not JSON), which also reports the first key that appears twice
/// in one object: `duplicate` gets the key (empty if none) and
/// `duplicate_depth` the object's nesting (1: the top-level object).
nlohmann::json parse_json_unique(std::string_view text, std::string& duplicate,
                                 int& duplicate_depth);

/// Typed copies of a parsed tensor (dtype must match, else sparq::Error).
std::vector<float> st_f32(const StTensor& t, const std::string& name, const std::string& what);
/// st_f32, and sparq::Error naming the tensor and index of a NaN or Inf:
/// every F32 parameter a file gives a layer must be finite.
std::vector<float> st_f32_finite(const StTensor& t, const std::string& name,
                                 const std::string& what);
std::vector<int8_t> st_i8(const StTensor& t, const std::string& name, const std::string& what);

/// A copy of raw bytes (the payload of an StOut).
std::vector<std::byte> as_bytes_vec(std::span<const std::byte> bytes);

}  // namespace sparq::nn::detail
