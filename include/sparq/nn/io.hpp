// Model files: safetensors import/export of FP32 weights, and saving and
// loading quantized models.
//
// safetensors (https://github.com/huggingface/safetensors) is
//   8 bytes   little-endian u64 N, the header length
//   N bytes   JSON object: { "<tensor name>": {"dtype": "F32", "shape": [..],
//             "data_offsets": [begin, end]}, ..., "__metadata__": {str: str} }
//   rest      the raw little-endian tensor data; offsets are relative to it
// sparq parses the header with nlohmann::json and validates every field,
// offset and size before reading data, and holds files to the format's rules
// (unique names, tensors tiling the data area with no overlap, gap or
// trailing bytes): a truncated, corrupted, mismatched or non-regular file
// throws sparq::Error naming the file and the problem, never crashes.
// docs/reliability.md lists every check and limit. Implemented in
// src/nn/safetensors.cpp (container, FP32 import) and src/nn/model_file.cpp
// (quantized models).
//
// Quantized model files are safetensors too (so generic tools can list them):
//   "<unit>.weight"        I8   [out][in] or [out][kh][kw][in/groups]
//   "<unit>.weight_scale"  F32  [out] (per channel) or [1] (per tensor)
//   "<unit>.bias"          F32  [out] (only when the layer has a bias)
//   "<unit>.<i>.<param>"   F32  parameters of FP32-kept layers (i: index in the block)
// and __metadata__ = {"format": "sparq.quantized_model", "format_version": "1",
// "model": "<JSON: one object per unit with its kind, geometry, mode,
// activation, weight kind and granularity, and u8 input/output qparams>"}.
// Requantization stages are rebuilt from these at load time, so a loaded
// model gives bit-identical outputs.
//
// Quantized graphs (QuantizedGraph, graph_quantized.hpp) use the same
// container with __metadata__ = {"format": "sparq.quantized_graph",
// "format_version": "1", "graph": "<JSON: inputs, outputs, and one object
// per step: name, inputs, the graph nodes it covers, and either 'unit' (an
// INT8 unit as above, with its tensors) or 'node' (an FP32 graph operator:
// 'op' kind and hyper-parameters, its parameters as F32 tensors
// '<step>.<param>', an int8 Embedding's as I8 '<step>.rows_int8' and F32
// '<step>.row_scales'), plus 'residual' and 'residual_qparams' for a
// residual fused into a static convolution>"}. The loader checks the wiring
// as Graph::add does (unique names, inputs computed before their readers,
// input counts, known outputs) and rebuilds the residual multipliers, so a
// loaded graph's forward is bit-identical to the saved one's. Every F32 tensor must be finite and a
// conv's padding at most dilation * (kernel - 1). All writes are atomic
// (sparq/detail/atomic_file.hpp).
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <span>
#include <string>

#include "sparq/nn/graph_quantized.hpp"
#include "sparq/nn/quantized.hpp"
#include "sparq/nn/sequential.hpp"

namespace sparq::nn {

/// Every tensor of a safetensors file, which must all be F32 (else
/// sparq::Error naming the tensor and its dtype).
TensorMap load_safetensors(const std::filesystem::path& path);
/// Writes F32 tensors (and optional string metadata) atomically.
void save_safetensors(const std::filesystem::path& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});

/// Sets every parameter of `model` from the file, by state_dict name (after
/// `rename`, if given, maps a parameter name to the file's tensor name, e.g.
/// to add a "model." prefix). Missing tensor, wrong shape or dtype other than
/// F32: sparq::Error naming the tensor, what the file has and what the model
/// expects. Tensors the model does not use are ignored.
void load_weights(Sequential& model, const std::filesystem::path& path,
                  const std::function<std::string(const std::string&)>& rename = {});

/// Saves a quantized model (atomic write).
void save(const QuantizedModel& model, const std::filesystem::path& path);
/// Loads a quantized model; sparq::Error for anything malformed.
QuantizedModel load_quantized(const std::filesystem::path& path);
/// The same from bytes in memory (the fuzzer's entry point).
QuantizedModel load_quantized(std::span<const std::byte> bytes);

/// Saves a quantized graph (atomic write): format "sparq.quantized_graph" (above).
void save(const QuantizedGraph& graph, const std::filesystem::path& path);
/// Loads a quantized graph; sparq::Error naming the file for anything
/// malformed, and for a quantized model file (load that with load_quantized).
QuantizedGraph load_quantized_graph(const std::filesystem::path& path);
/// The same from bytes in memory.
QuantizedGraph load_quantized_graph(std::span<const std::byte> bytes);

}  // namespace sparq::nn
