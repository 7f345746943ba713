// libFuzzer target: the safetensors import (parse_safetensors and the F32
// conversion load_safetensors / load_weights do) on arbitrary bytes.
//
// Contract: any input either parses or throws sparq::Error; anything else
// (another exception, a crash, a sanitizer report, a timeout, an
// allocation beyond the input's size) is a finding. A file that parses is
// converted like load_safetensors does, then written back with
// build_safetensors and parsed again: the second parse must succeed and
// give the same tensors (else abort: a finding).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "nn/safetensors.hpp"
#include "sparq/error.hpp"
#include "sparq/nn/tensor.hpp"

namespace st = sparq::nn::detail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  st::StFile file;
  try {
    file = st::parse_safetensors(bytes, "fuzz");
  } catch (const sparq::Error&) {
    return 0;  // the documented outcome for a bad file
  }
  std::vector<st::StOut> out;
  for (const auto& [name, t] : file.tensors) {
    if (t.dtype == "F32") {
      try {
        const sparq::nn::Tensor tensor(t.shape, st::st_f32(t, name, "fuzz"));
        (void)tensor;
      } catch (const sparq::Error&) {
      }
    }
    out.push_back({name, t.dtype, t.shape, std::vector<std::byte>(t.bytes.begin(), t.bytes.end())});
  }
  const std::vector<std::byte> again = st::build_safetensors(out, file.metadata);
  const st::StFile back = st::parse_safetensors(again, "fuzz round trip");  // throws: a finding
  if (back.tensors.size() != file.tensors.size() || back.metadata != file.metadata) std::abort();
  for (const auto& [name, t] : file.tensors) {
    const auto it = back.tensors.find(name);
    if (it == back.tensors.end() || it->second.dtype != t.dtype || it->second.shape != t.shape ||
        it->second.bytes.size() != t.bytes.size() ||
        (!t.bytes.empty() &&
         std::memcmp(it->second.bytes.data(), t.bytes.data(), t.bytes.size()) != 0)) {
      std::abort();
    }
  }
  return 0;
}
