// The safetensors container (parse with full validation, build) and the
// FP32 import/export built on it: load_safetensors, save_safetensors,
// load_weights. The quantized model format on top of the container is
// src/nn/model_file.cpp.
#include "nn/safetensors.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "io/files.hpp"
#include "sparq/error.hpp"
#include "sparq/nn/graph.hpp"
#include "sparq/nn/io.hpp"
#include "util/checked_size.hpp"

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian port must byte-swap here");

namespace sparq::nn {

using sparq::detail::fail;
using json = nlohmann::json;

namespace detail {

// ------------------------------------------------------------------ container
std::size_t st_dtype_size(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  return 0;
}

int json_depth(std::string_view s) {
  int depth = 0, max_depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return max_depth;
}

json parse_json_unique(std::string_view text, std::string& duplicate, int& duplicate_depth) {
  // nlohmann keeps the last of duplicate keys silently; the safetensors
  // format (and sparq's model description) forbid them, so the parser's
  // callback records the first key seen twice in the same object.
  std::vector<std::set<std::string>> open_objects;
  const json::parser_callback_t cb = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty() && duplicate.empty()) {
      if (!open_objects.back().insert(parsed.get<std::string>()).second) {
        duplicate = parsed.get<std::string>();
        duplicate_depth = static_cast<int>(open_objects.size());
      }
    }
    return true;
  };
  return json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/false);
}

namespace {

uint64_t json_u64(const json& j, const std::string& what, const std::string& field) {
  if (!j.is_number_unsigned() && !(j.is_number_integer() && j.get<int64_t>() >= 0)) {
    fail("{}: {} must be a non-negative integer (got {})", what, field, j.dump());
  }
  return j.get<uint64_t>();
}

/// The data area must be tiled exactly by the tensors, in offset order: no
/// overlap, no gap, no byte after the last tensor (as the reference
/// implementation requires).
void check_tiling(const StFile& file, std::size_t data_size, const std::string& what) {
  std::vector<std::pair<const std::string*, const StTensor*>> order;
  order.reserve(file.tensors.size());
  for (const auto& [name, t] : file.tensors) order.emplace_back(&name, &t);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    const uint64_t ae = a.second->offset + a.second->bytes.size();
    const uint64_t be = b.second->offset + b.second->bytes.size();
    return a.second->offset != b.second->offset ? a.second->offset < b.second->offset : ae < be;
  });
  uint64_t cursor = 0;
  const std::string* previous = nullptr;
  for (const auto& [name, t] : order) {
    const uint64_t begin = t->offset, end = t->offset + t->bytes.size();
    if (begin < cursor) {
      fail("{}: tensor '{}' data_offsets [{}, {}] overlap tensor '{}' (which ends at {})", what,
           *name, begin, end, *previous, cursor);
    }
    if (begin > cursor) {
      fail(
          "{}: tensor '{}' starts at {} but the previous tensor{} ends at {}: a gap of {} bytes "
          "(the format allows none)",
          what, *name, begin, previous ? " '" + *previous + "'" : std::string(" (none)"), cursor,
          begin - cursor);
    }
    cursor = end;
    previous = name;
  }
  if (cursor != data_size) {
    fail("{}: {} trailing bytes after the last tensor{} (data area {} bytes, tensors end at {})",
         what, data_size - cursor, previous ? " '" + *previous + "'" : std::string(), data_size,
         cursor);
  }
}

}  // namespace

StFile parse_safetensors(std::span<const std::byte> bytes, const std::string& what) {
  if (bytes.size() < 8) {
    fail("{}: truncated safetensors file: {} bytes, expected at least the 8-byte header length",
         what, bytes.size());
  }
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  constexpr uint64_t max_header = 100u << 20;  // the reference implementation's limit
  if (n > bytes.size() - 8 || n > max_header) {
    fail("{}: header length {} exceeds the file ({} bytes after the length) or the 100 MiB limit",
         what, n, bytes.size() - 8);
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()) + 8, n);
  if (json_depth(text) > 8)
    fail("{}: header JSON is nested deeper than a safetensors header can be", what);
  std::string duplicate;
  int duplicate_depth = 0;
  json header = parse_json_unique(text, duplicate, duplicate_depth);
  if (header.is_discarded()) fail("{}: header is not valid JSON", what);
  if (!header.is_object())
    fail("{}: header must be a JSON object (got {})", what, header.type_name());
  if (!duplicate.empty()) {
    if (duplicate_depth == 1 && duplicate == "__metadata__")
      fail("{}: the header has two __metadata__ entries; the format allows one", what);
    if (duplicate_depth == 1)
      fail("{}: tensor '{}' appears twice in the header; names must be unique", what, duplicate);
    fail("{}: key '{}' appears twice in one object of the header; keys must be unique", what,
         duplicate);
  }
  StFile file;
  file.header_bytes = n;
  const std::span<const std::byte> data = bytes.subspan(8 + n);
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) fail("{}: __metadata__ must be an object of strings", what);
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string())
          fail("{}: __metadata__['{}'] must be a string (got {})", what, k, v.type_name());
        file.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = fmt::format("{}: tensor '{}'", what, name);
    if (!value.is_object()) fail("{} must be an object with dtype, shape and data_offsets", where);
    const auto dt = value.find("dtype");
    const auto sh = value.find("shape");
    const auto off = value.find("data_offsets");
    if (dt == value.end() || sh == value.end() || off == value.end() || !dt->is_string() ||
        !sh->is_array() || !off->is_array() || off->size() != 2) {
      fail("{} needs \"dtype\" (string), \"shape\" (array) and \"data_offsets\" ([begin, end])",
           where);
    }
    StTensor t;
    t.dtype = dt->get<std::string>();
    const std::size_t elem = st_dtype_size(t.dtype);
    if (elem == 0) fail("{} has unknown dtype '{}'", where, t.dtype);
    if (sh->size() > 16) fail("{} has rank {}; expected at most 16", where, sh->size());
    for (const json& d : *sh) {
      const uint64_t v = json_u64(d, where, "every shape dimension");
      if (v > sparq::detail::kMaxElements) {
        fail("{}: dimension {} exceeds the limit of {} (2^48)", where, v,
             sparq::detail::kMaxElements);
      }
      t.shape.push_back(static_cast<int64_t>(v));
    }
    t.numel = static_cast<int64_t>(sparq::detail::checked_count(t.shape, where.c_str()));
    const uint64_t begin = json_u64((*off)[0], where, "data_offsets[0]");
    const uint64_t end = json_u64((*off)[1], where, "data_offsets[1]");
    if (begin > end || end > data.size()) {
      fail("{}: data_offsets [{}, {}] must satisfy begin <= end <= {} (the data area)", where,
           begin, end, data.size());
    }
    const uint64_t need = static_cast<uint64_t>(t.numel) * elem;  // <= 2^51: no wrap
    if (end - begin != need) {
      fail("{}: data_offsets cover {} bytes but {} {} values need {}", where, end - begin, t.numel,
           t.dtype, need);
    }
    t.offset = begin;
    t.bytes = data.subspan(begin, end - begin);
    file.tensors.emplace(name, std::move(t));
  }
  check_tiling(file, data.size(), what);
  return file;
}

std::vector<std::byte> build_safetensors(const std::vector<StOut>& tensors,
                                         const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const StOut& t : tensors) {
    if (t.name == "__metadata__") fail("save: a tensor cannot be named __metadata__");
    if (header.contains(t.name)) fail("save: tensor name '{}' is used twice", t.name);
    const uint64_t need =
        sparq::detail::checked_mul(sparq::detail::checked_count(t.shape, "save"),
                                   st_dtype_size(t.dtype), "save", sparq::detail::kMaxBytes);
    if (st_dtype_size(t.dtype) == 0 || need != t.bytes.size()) {
      fail("save: tensor '{}' ({} {}) has {} bytes; expected {}", t.name, t.dtype,
           shape_to_string(t.shape), t.bytes.size(), need);
    }
    header[t.name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + need}}};
    offset += need;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8,
              ' ');  // data area 8-byte aligned, as the reference writer does
  std::vector<std::byte> out(8 + text.size());
  const uint64_t n = text.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, text.data(), text.size());
  out.reserve(out.size() + offset);
  for (const StOut& t : tensors) out.insert(out.end(), t.bytes.begin(), t.bytes.end());
  return out;
}

namespace {

// The values of t when its dtype is `dtype` (T's safetensors name); the
// loader has already checked that t.bytes holds numel elements.
template <class T>
std::vector<T> st_values(const StTensor& t, const std::string& name, const std::string& what,
                         const char* dtype) {
  if (t.dtype != dtype)
    fail("{}: tensor '{}' has dtype {}; expected {}", what, name, t.dtype, dtype);
  std::vector<T> v(static_cast<std::size_t>(t.numel));
  if (!v.empty()) std::memcpy(v.data(), t.bytes.data(), t.bytes.size());
  return v;
}

}  // namespace

std::vector<float> st_f32(const StTensor& t, const std::string& name, const std::string& what) {
  return st_values<float>(t, name, what, "F32");
}

std::vector<float> st_f32_finite(const StTensor& t, const std::string& name,
                                 const std::string& what) {
  std::vector<float> v = st_f32(t, name, what);
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) {
      fail("{}: tensor '{}' value [{}] is {}; parameters must be finite", what, name, i, v[i]);
    }
  }
  return v;
}

std::vector<int8_t> st_i8(const StTensor& t, const std::string& name, const std::string& what) {
  return st_values<int8_t>(t, name, what, "I8");
}

std::vector<std::byte> as_bytes_vec(std::span<const std::byte> b) {
  return std::vector<std::byte>(b.begin(), b.end());
}

}  // namespace detail

// ------------------------------------------------------------------ FP32 files

TensorMap load_safetensors(const std::filesystem::path& path) {
  const std::vector<std::byte> bytes = sparq::detail::read_regular_file(path, "load_safetensors");
  const detail::StFile f = detail::parse_safetensors(bytes, path.string());
  TensorMap out;
  for (const auto& [name, t] : f.tensors)
    out[name] = Tensor(t.shape, detail::st_f32(t, name, path.string()));
  return out;
}

void save_safetensors(const std::filesystem::path& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<detail::StOut> out;
  for (const auto& [name, t] : tensors) {
    if (static_cast<int64_t>(sparq::detail::checked_count(t.shape, "save_safetensors")) !=
        t.numel()) {
      fail("save_safetensors: tensor '{}' has {} values but shape {}", name, t.numel(),
           shape_to_string(t.shape));
    }
    out.push_back({name, "F32", t.shape, detail::as_bytes_vec(std::as_bytes(std::span(t.data)))});
  }
  const std::vector<std::byte> bytes = detail::build_safetensors(out, metadata);
  sparq::detail::write_file_atomically(path, bytes);
}

void load_weights(Sequential& model, const std::filesystem::path& path,
                  const std::function<std::string(const std::string&)>& rename) {
  const std::vector<std::byte> bytes = sparq::detail::read_regular_file(path, "load_weights");
  const std::string what = path.string();
  const detail::StFile f = detail::parse_safetensors(bytes, what);
  TensorMap params;
  for (const auto& [name, expected] : model.state_dict()) {
    const std::string file_name = rename ? rename(name) : name;
    auto it = f.tensors.find(file_name);
    if (it == f.tensors.end()) {
      fail("{}: missing tensor '{}' for parameter '{}' (expected F32 {})", what, file_name, name,
           shape_to_string(expected.shape));
    }
    if (it->second.dtype != "F32") {
      fail("{}: tensor '{}' has dtype {}; parameter '{}' expects F32", what, file_name,
           it->second.dtype, name);
    }
    if (it->second.shape != expected.shape) {
      fail("{}: tensor '{}' has shape {}; parameter '{}' expects {}", what, file_name,
           shape_to_string(it->second.shape), name, shape_to_string(expected.shape));
    }
    params[name] = Tensor(it->second.shape, detail::st_f32_finite(it->second, file_name, what));
  }
  model.load_state_dict(params, true);
}

void load_weights(Graph& graph, const std::filesystem::path& path, bool strict,
                  ConvWeightLayout layout) {
  const std::vector<std::byte> bytes = sparq::detail::read_regular_file(path, "load_weights");
  const std::string what = path.string();
  const detail::StFile f = detail::parse_safetensors(bytes, what);
  const TensorMap expected = graph.state_dict();
  TensorMap params;
  for (const auto& [name, t] : f.tensors) {
    // PyTorch exports BatchNorm's int64 counter; nothing at inference reads it.
    if (name.ends_with(".num_batches_tracked")) continue;
    if (t.dtype != "F32") {
      if (!expected.count(name) && !strict) continue;
      fail("{}: tensor '{}' has dtype {}; sparq reads F32 parameters", what, name, t.dtype);
    }
    params[name] = Tensor(t.shape, detail::st_f32_finite(t, name, what));
  }
  try {
    graph.load_state_dict(params, strict, layout);
  } catch (const Error& e) {
    fail("{}: {}", what, e.what());
  }
}

}  // namespace sparq::nn
