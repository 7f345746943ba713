// safetensors import/export and quantized model files.
#include "sparq/nn/io.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include <sys/stat.h>  // fchmod, used by atomic_file.hpp, which does not include it itself

#include "nn/nn_internal.hpp"
#include "nn/safetensors.hpp"
// g++ 12 reports a false -Wrestrict inside atomic_file.hpp's string
// concatenation (GCC bug 105329) when it is inlined here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wrestrict"
#endif
#include "sparq/detail/atomic_file.hpp"
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#include "sparq/error.hpp"

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian port must byte-swap in io.cpp");

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

/// Deepest bracket nesting of a JSON text (strings skipped). The header is
/// rejected above a small depth before nlohmann parses it, so hostile input
/// cannot make any recursive code run deep.
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

namespace {

uint64_t json_u64(const json& j, const std::string& what, const std::string& field) {
  if (!j.is_number_unsigned() && !(j.is_number_integer() && j.get<int64_t>() >= 0)) {
    fail("{}: {} must be a non-negative integer (got {})", what, field, j.dump());
  }
  return j.get<uint64_t>();
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
  json header = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) fail("{}: header is not valid JSON", what);
  if (!header.is_object())
    fail("{}: header must be a JSON object (got {})", what, header.type_name());
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
      if (v > (uint64_t{1} << 48)) fail("{}: dimension {} is implausibly large", where, v);
      t.shape.push_back(static_cast<int64_t>(v));
    }
    t.numel = checked_numel(t.shape, where.c_str());
    const uint64_t begin = json_u64((*off)[0], where, "data_offsets[0]");
    const uint64_t end = json_u64((*off)[1], where, "data_offsets[1]");
    if (begin > end || end > data.size()) {
      fail("{}: data_offsets [{}, {}] must satisfy begin <= end <= {} (the data area)", where,
           begin, end, data.size());
    }
    if (static_cast<uint64_t>(t.numel) > std::numeric_limits<uint64_t>::max() / elem ||
        end - begin != static_cast<uint64_t>(t.numel) * elem) {
      fail("{}: data_offsets cover {} bytes but {} {} values need {}", where, end - begin, t.numel,
           t.dtype, static_cast<uint64_t>(t.numel) * elem);
    }
    t.offset = begin;
    t.bytes = data.subspan(begin, end - begin);
    file.tensors.emplace(name, std::move(t));
  }
  return file;
}

std::vector<std::byte> build_safetensors(const std::vector<StOut>& tensors,
                                         const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const StOut& t : tensors) {
    if (t.name == "__metadata__") fail("save: a tensor cannot be named __metadata__");
    const uint64_t need =
        static_cast<uint64_t>(checked_numel(t.shape, "save")) * st_dtype_size(t.dtype);
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

std::vector<std::byte> read_whole_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '{}' for reading", path.string());
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) fail("cannot determine the size of '{}'", path.string());
  in.seekg(0);
  std::vector<std::byte> bytes(static_cast<std::size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size))
    fail("read error on '{}'", path.string());
  return bytes;
}

std::vector<float> st_f32(const StTensor& t, const std::string& name, const std::string& what) {
  if (t.dtype != "F32") fail("{}: tensor '{}' has dtype {}; expected F32", what, name, t.dtype);
  std::vector<float> v(static_cast<std::size_t>(t.numel));
  if (!v.empty()) std::memcpy(v.data(), t.bytes.data(), t.bytes.size());
  return v;
}

std::vector<int8_t> st_i8(const StTensor& t, const std::string& name, const std::string& what) {
  if (t.dtype != "I8") fail("{}: tensor '{}' has dtype {}; expected I8", what, name, t.dtype);
  std::vector<int8_t> v(static_cast<std::size_t>(t.numel));
  if (!v.empty()) std::memcpy(v.data(), t.bytes.data(), t.bytes.size());
  return v;
}

}  // namespace detail

// ------------------------------------------------------------------ FP32 files
namespace {

template <class T>
std::vector<std::byte> as_bytes_vec(const std::vector<T>& v) {
  std::vector<std::byte> b(v.size() * sizeof(T));
  if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

}  // namespace

TensorMap load_safetensors(const std::filesystem::path& path) {
  const std::vector<std::byte> bytes = detail::read_whole_file(path);
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
    if (checked_numel(t.shape, "save_safetensors") != t.numel()) {
      fail("save_safetensors: tensor '{}' has {} values but shape {}", name, t.numel(),
           shape_to_string(t.shape));
    }
    out.push_back({name, "F32", t.shape, as_bytes_vec(t.data)});
  }
  const std::vector<std::byte> bytes = detail::build_safetensors(out, metadata);
  sparq::detail::write_file_atomically(path, bytes);
}

void load_weights(Sequential& model, const std::filesystem::path& path,
                  const std::function<std::string(const std::string&)>& rename) {
  const std::vector<std::byte> bytes = detail::read_whole_file(path);
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
    params[name] = Tensor(it->second.shape, detail::st_f32(it->second, file_name, what));
  }
  model.load_state_dict(params, true);
}

// ------------------------------------------------------------------ quantized files
namespace {

constexpr const char* kFormat = "sparq.quantized_model";
constexpr const char* kVersion = "1";

json qparams_json(const QParams& q) { return {{"scale", q.scale}, {"zero_point", q.zero_point}}; }

json geometry_json(const Conv2dGeometry& g) {
  return {{"in", g.in_channels},
          {"out", g.out_channels},
          {"kernel", {g.kernel_h, g.kernel_w}},
          {"stride", {g.stride_h, g.stride_w}},
          {"padding", {g.pad_h, g.pad_w}},
          {"dilation", {g.dilation_h, g.dilation_w}},
          {"groups", g.groups}};
}

json pool_json(const MaxPool2d& p) {
  return {{"kind", "maxpool2d"},
          {"kernel", {p.kernel_h, p.kernel_w}},
          {"stride", {p.stride_h, p.stride_w}},
          {"padding", {p.pad_h, p.pad_w}}};
}

json layer_json(const Layer& layer) {
  return std::visit(
      [](const auto& l) -> json {
        using L = std::decay_t<decltype(l)>;
        if constexpr (std::is_same_v<L, Linear>) {
          return {{"kind", "linear"},
                  {"in", l.in_features},
                  {"out", l.out_features},
                  {"bias", l.has_bias()}};
        } else if constexpr (std::is_same_v<L, Conv2d>) {
          json j = geometry_json(l);
          j["kind"] = "conv2d";
          j["bias"] = l.has_bias();
          return j;
        } else if constexpr (std::is_same_v<L, BatchNorm>) {
          return {{"kind", "batchnorm"}, {"features", l.num_features}, {"eps", l.eps}};
        } else if constexpr (std::is_same_v<L, ReLU>) {
          return {{"kind", "relu"}};
        } else if constexpr (std::is_same_v<L, ReLU6>) {
          return {{"kind", "relu6"}};
        } else if constexpr (std::is_same_v<L, MaxPool2d>) {
          return pool_json(l);
        } else {
          return {{"kind", "flatten"}};
        }
      },
      layer);
}

/// Checked access to the model description (every failure is a sparq::Error).
struct Reader {
  std::string what;

  const json& field(const json& j, const char* key) const {
    if (!j.is_object())
      fail("{}: model description: expected an object, got {}", what, j.type_name());
    auto it = j.find(key);
    if (it == j.end())
      fail("{}: model description: missing field '{}' in {}", what, key, j.dump().substr(0, 200));
    return *it;
  }
  int64_t integer(const json& j, const char* key, int64_t lo, int64_t hi) const {
    const json& v = field(j, key);
    if (!v.is_number_integer())
      fail("{}: model description: '{}' must be an integer (got {})", what, key, v.dump());
    // Large unsigned values compare as out of range instead of wrapping.
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi)) {
      fail("{}: model description: '{}' = {} must be in [{}, {}]", what, key, v.dump(), lo, hi);
    }
    const int64_t x = v.get<int64_t>();
    if (x < lo || x > hi)
      fail("{}: model description: '{}' = {} must be in [{}, {}]", what, key, x, lo, hi);
    return x;
  }
  std::array<int64_t, 2> pair(const json& j, const char* key, int64_t lo, int64_t hi) const {
    const json& v = field(j, key);
    if (!v.is_array() || v.size() != 2)
      fail("{}: model description: '{}' must be [h, w]", what, key);
    json tmp = {{"h", v[0]}, {"w", v[1]}};
    return {integer(tmp, "h", lo, hi), integer(tmp, "w", lo, hi)};
  }
  std::string string(const json& j, const char* key) const {
    const json& v = field(j, key);
    if (!v.is_string()) fail("{}: model description: '{}' must be a string", what, key);
    return v.get<std::string>();
  }
  bool boolean(const json& j, const char* key) const {
    const json& v = field(j, key);
    if (!v.is_boolean()) fail("{}: model description: '{}' must be true or false", what, key);
    return v.get<bool>();
  }
  float number(const json& j, const char* key) const {
    const json& v = field(j, key);
    if (!v.is_number()) fail("{}: model description: '{}' must be a number", what, key);
    return static_cast<float>(v.get<double>());
  }
  QParams qparams(const json& j, const char* key) const {
    const json& v = field(j, key);
    return {number(v, "scale"), static_cast<int32_t>(integer(v, "zero_point", 0, 255))};
  }
};

constexpr int64_t kMaxDim = int64_t{1} << 24;

Conv2dGeometry geometry_from(const Reader& r, const json& j) {
  Conv2dGeometry g;
  g.in_channels = r.integer(j, "in", 1, kMaxDim);
  g.out_channels = r.integer(j, "out", 1, kMaxDim);
  std::tie(g.kernel_h, g.kernel_w) = std::tuple_cat(r.pair(j, "kernel", 1, kMaxDim));
  std::tie(g.stride_h, g.stride_w) = std::tuple_cat(r.pair(j, "stride", 1, kMaxDim));
  std::tie(g.pad_h, g.pad_w) = std::tuple_cat(r.pair(j, "padding", 0, kMaxDim));
  std::tie(g.dilation_h, g.dilation_w) = std::tuple_cat(r.pair(j, "dilation", 1, kMaxDim));
  g.groups = r.integer(j, "groups", 1, kMaxDim);
  g.validate();
  if (g.kernel_h * g.kernel_w > kMaxDim)
    fail("{}: conv kernel {}x{} is too large", r.what, g.kernel_h, g.kernel_w);
  return g;
}

MaxPool2d pool_from(const Reader& r, const json& j) {
  MaxPool2d p;
  std::tie(p.kernel_h, p.kernel_w) = std::tuple_cat(r.pair(j, "kernel", 1, kMaxDim));
  std::tie(p.stride_h, p.stride_w) = std::tuple_cat(r.pair(j, "stride", 1, kMaxDim));
  std::tie(p.pad_h, p.pad_w) = std::tuple_cat(r.pair(j, "padding", 0, kMaxDim));
  p.validate();
  return p;
}

Activation activation_from(const Reader& r, const json& j) {
  const std::string a = r.string(j, "activation");
  if (a == "none") return Activation::none;
  if (a == "relu") return Activation::relu;
  if (a == "relu6") return Activation::relu6;
  fail("{}: model description: activation '{}' must be none, relu or relu6", r.what, a);
}

QuantMode mode_from(const Reader& r, const json& j) {
  const std::string m = r.string(j, "mode");
  if (m == "static") return QuantMode::static_;
  if (m == "dynamic") return QuantMode::dynamic;
  fail("{}: model description: mode '{}' must be static or dynamic", r.what, m);
}

/// A layer with its hyper-parameters only; parameters are set by the caller
/// from file tensors whose shapes have been checked (nothing is allocated from
/// sizes the file merely claims).
Layer layer_from(const Reader& r, const json& j) {
  const std::string kind = r.string(j, "kind");
  if (kind == "linear") {
    Linear l;
    l.in_features = r.integer(j, "in", 1, int64_t{1} << 31);
    l.out_features = r.integer(j, "out", 1, int64_t{1} << 31);
    if (r.boolean(j, "bias")) l.bias.shape = {l.out_features};  // marks "has bias"; data set later
    return l;
  }
  if (kind == "conv2d") {
    Conv2d c;
    static_cast<Conv2dGeometry&>(c) = geometry_from(r, j);
    if (r.boolean(j, "bias")) c.bias.shape = {c.out_channels};
    return c;
  }
  if (kind == "batchnorm") {
    BatchNorm b;
    b.num_features = r.integer(j, "features", 1, int64_t{1} << 31);
    b.eps = r.number(j, "eps");
    if (!(b.eps > 0.0f) || !std::isfinite(b.eps))
      fail("{}: batchnorm eps {} must be finite and > 0", r.what, b.eps);
    return b;
  }
  if (kind == "relu") return ReLU{};
  if (kind == "relu6") return ReLU6{};
  if (kind == "maxpool2d") return pool_from(r, j);
  if (kind == "flatten") return Flatten{};
  fail("{}: model description: unknown layer kind '{}'", r.what, kind);
}

/// Names and shapes of a layer's parameters (BatchNorm: 4, Linear/Conv: weight [+ bias]).
std::vector<std::pair<std::string, std::vector<int64_t>>> param_shapes(const Layer& layer) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  if (const auto* l = std::get_if<Linear>(&layer)) {
    out.push_back({"weight", {l->out_features, l->in_features}});
    if (!l->bias.shape.empty()) out.push_back({"bias", {l->out_features}});
  } else if (const auto* c = std::get_if<Conv2d>(&layer)) {
    out.push_back(
        {"weight", {c->out_channels, c->kernel_h, c->kernel_w, c->in_channels / c->groups}});
    if (!c->bias.shape.empty()) out.push_back({"bias", {c->out_channels}});
  } else if (const auto* b = std::get_if<BatchNorm>(&layer)) {
    for (const char* n : {"weight", "bias", "running_mean", "running_var"})
      out.push_back({n, {b->num_features}});
  }
  return out;
}

struct TensorSource {
  const detail::StFile& file;
  std::string what;

  const detail::StTensor& get(const std::string& name, const std::string& dtype,
                              const std::vector<int64_t>& shape) const {
    auto it = file.tensors.find(name);
    if (it == file.tensors.end()) {
      fail("{}: missing tensor '{}' ({} {})", what, name, dtype, shape_to_string(shape));
    }
    if (it->second.dtype != dtype)
      fail("{}: tensor '{}' has dtype {}; expected {}", what, name, it->second.dtype, dtype);
    if (it->second.shape != shape) {
      fail("{}: tensor '{}' has shape {}; expected {}", what, name,
           shape_to_string(it->second.shape), shape_to_string(shape));
    }
    return it->second;
  }
  std::vector<float> f32(const std::string& name, const std::vector<int64_t>& shape) const {
    return detail::st_f32(get(name, "F32", shape), name, what);
  }
  std::vector<int8_t> i8(const std::string& name, const std::vector<int64_t>& shape) const {
    return detail::st_i8(get(name, "I8", shape), name, what);
  }
};

/// Weight scales: [out] per channel, [1] per tensor.
std::vector<float> read_scales(const TensorSource& src, const std::string& name, bool per_channel,
                               int64_t out) {
  return src.f32(name + ".weight_scale", {per_channel ? out : 1});
}

std::string weights_kind(const Reader& r, const json& j) {
  const std::string k = r.string(j, "weights");
  // Only the dense kind exists so far; a new packed kind adds its case here and in save().
  if (k != "dense") fail("{}: unknown weights kind '{}' (this build knows: dense)", r.what, k);
  return k;
}

}  // namespace

void save(const QuantizedModel& model, const std::filesystem::path& path) {
  json units = json::array();
  std::vector<detail::StOut> tensors;
  auto add_f32 = [&](const std::string& name, std::vector<int64_t> shape,
                     const std::vector<float>& v) {
    tensors.push_back({name, "F32", std::move(shape), as_bytes_vec(v)});
  };
  for (const QuantizedUnit& u : model.units()) {
    json j;
    j["name"] = u.name;
    if (const auto* l = std::get_if<QLinear>(&u.op)) {
      j.update({{"kind", "qlinear"},
                {"in", l->in_features},
                {"out", l->out_features},
                {"bias", !l->bias.empty()},
                {"mode", mode_name(l->mode)},
                {"activation", activation_name(l->activation)},
                {"weights", l->weights->kind()},
                {"per_channel", l->weights->per_channel()},
                {"per_row", l->per_row},
                {"input_qparams", qparams_json(l->input_qparams)},
                {"output_qparams", qparams_json(l->output_qparams)}});
      const auto v = l->weights->values();
      tensors.push_back({u.name + ".weight",
                         "I8",
                         {l->out_features, l->in_features},
                         as_bytes_vec(std::vector<int8_t>(v.begin(), v.end()))});
      const auto s = l->weights->scales();
      add_f32(u.name + ".weight_scale", {l->weights->per_channel() ? l->out_features : 1},
              l->weights->per_channel() ? std::vector<float>(s.begin(), s.end())
                                        : std::vector<float>{s[0]});
      if (!l->bias.empty()) add_f32(u.name + ".bias", {l->out_features}, l->bias);
    } else if (const auto* c = std::get_if<QConv2d>(&u.op)) {
      j = geometry_json(*c);
      j.update({{"name", u.name},
                {"kind", "qconv2d"},
                {"bias", !c->bias.empty()},
                {"mode", mode_name(c->mode)},
                {"activation", activation_name(c->activation)},
                {"weights", c->weights[0]->kind()},
                {"per_channel", c->weights[0]->per_channel()},
                {"input_qparams", qparams_json(c->input_qparams)},
                {"output_qparams", qparams_json(c->output_qparams)}});
      std::vector<int8_t> values;
      std::vector<float> scales;
      for (const auto& w : c->weights) {
        values.insert(values.end(), w->values().begin(), w->values().end());
        scales.insert(scales.end(), w->scales().begin(), w->scales().end());
      }
      const bool pc = c->weights[0]->per_channel();
      tensors.push_back({u.name + ".weight",
                         "I8",
                         {c->out_channels, c->kernel_h, c->kernel_w, c->in_channels / c->groups},
                         as_bytes_vec(values)});
      add_f32(u.name + ".weight_scale", {pc ? c->out_channels : 1},
              pc ? scales : std::vector<float>{scales[0]});
      if (!c->bias.empty()) add_f32(u.name + ".bias", {c->out_channels}, c->bias);
    } else if (const auto* p = std::get_if<MaxPool2d>(&u.op)) {
      j.update(pool_json(*p));
    } else if (std::holds_alternative<Flatten>(u.op)) {
      j["kind"] = "flatten";
    } else {
      const auto& block = std::get<Fp32Block>(u.op);
      j["kind"] = "fp32";
      j["layers"] = json::array();
      Sequential s;
      for (const Layer& l : block.layers) {
        j["layers"].push_back(layer_json(l));
        s.add(l);
      }
      for (const auto& [name, t] : s.state_dict()) add_f32(u.name + "." + name, t.shape, t.data);
    }
    units.push_back(std::move(j));
  }
  const json description = {{"units", units}};
  const std::map<std::string, std::string> metadata{
      {"format", kFormat}, {"format_version", kVersion}, {"model", description.dump()}};
  sparq::detail::write_file_atomically(path, detail::build_safetensors(tensors, metadata));
}

namespace {

QuantizedModel load_impl(std::span<const std::byte> bytes, const std::string& what) {
  const detail::StFile file = detail::parse_safetensors(bytes, what);
  const Reader r{what};
  const auto fmt_it = file.metadata.find("format");
  if (fmt_it == file.metadata.end() || fmt_it->second != kFormat) {
    fail("{}: not a sparq quantized model (__metadata__.format must be '{}')", what, kFormat);
  }
  const auto ver = file.metadata.find("format_version");
  if (ver == file.metadata.end() || ver->second != kVersion) {
    fail("{}: unsupported format_version '{}' (this build reads version {})", what,
         ver == file.metadata.end() ? "(missing)" : ver->second, kVersion);
  }
  const auto model_it = file.metadata.find("model");
  if (model_it == file.metadata.end()) fail("{}: __metadata__ has no 'model' description", what);
  if (detail::json_depth(model_it->second) > 8)
    fail("{}: model description is nested too deeply", what);
  const json desc = json::parse(model_it->second, nullptr, false);
  if (desc.is_discarded()) fail("{}: the model description is not valid JSON", what);
  const json& units_j = r.field(desc, "units");
  if (!units_j.is_array()) fail("{}: model description: 'units' must be an array", what);
  const TensorSource src{file, what};
  std::vector<QuantizedUnit> units;
  for (const json& j : units_j) {
    QuantizedUnit u;
    u.name = r.string(j, "name");
    const std::string kind = r.string(j, "kind");
    if (kind == "qlinear") {
      QLinear l;
      l.in_features = r.integer(j, "in", 1, int64_t{1} << 31);
      l.out_features = r.integer(j, "out", 1, int64_t{1} << 31);
      l.mode = mode_from(r, j);
      l.activation = activation_from(r, j);
      l.per_row = r.boolean(j, "per_row");
      l.input_qparams = r.qparams(j, "input_qparams");
      l.output_qparams = r.qparams(j, "output_qparams");
      weights_kind(r, j);
      const bool pc = r.boolean(j, "per_channel");
      std::vector<int8_t> w = src.i8(u.name + ".weight", {l.out_features, l.in_features});
      l.weights = make_dense_weights(std::move(w), l.out_features, l.in_features,
                                     read_scales(src, u.name, pc, l.out_features));
      if (r.boolean(j, "bias")) l.bias = src.f32(u.name + ".bias", {l.out_features});
      u.op = std::move(l);
    } else if (kind == "qconv2d") {
      QConv2d c;
      static_cast<Conv2dGeometry&>(c) = geometry_from(r, j);
      c.mode = mode_from(r, j);
      c.activation = activation_from(r, j);
      c.input_qparams = r.qparams(j, "input_qparams");
      c.output_qparams = r.qparams(j, "output_qparams");
      weights_kind(r, j);
      const bool pc = r.boolean(j, "per_channel");
      const std::vector<int8_t> w = src.i8(
          u.name + ".weight", {c.out_channels, c.kernel_h, c.kernel_w, c.in_channels / c.groups});
      c.weights = detail::split_groups(w, read_scales(src, u.name, pc, c.out_channels), c);
      if (r.boolean(j, "bias")) c.bias = src.f32(u.name + ".bias", {c.out_channels});
      u.op = std::move(c);
    } else if (kind == "maxpool2d") {
      u.op = pool_from(r, j);
    } else if (kind == "flatten") {
      u.op = Flatten{};
    } else if (kind == "fp32") {
      const json& layers = r.field(j, "layers");
      if (!layers.is_array() || layers.empty())
        fail("{}: unit '{}': 'layers' must be a non-empty array", what, u.name);
      Fp32Block block;
      for (std::size_t i = 0; i < layers.size(); ++i) {
        Layer layer = layer_from(r, layers[i]);
        // Not a structured binding: clang 14 cannot capture those in the lambda below.
        for (const auto& param : param_shapes(layer)) {
          const std::string& pname = param.first;
          Tensor t(param.second,
                   src.f32(u.name + "." + std::to_string(i) + "." + pname, param.second));
          std::visit(
              [&](auto& l) {
                using L = std::decay_t<decltype(l)>;
                if constexpr (std::is_same_v<L, Linear> || std::is_same_v<L, Conv2d>) {
                  (pname == "weight" ? l.weight : l.bias) = std::move(t);
                } else if constexpr (std::is_same_v<L, BatchNorm>) {
                  if (pname == "weight")
                    l.weight = std::move(t);
                  else if (pname == "bias")
                    l.bias = std::move(t);
                  else if (pname == "running_mean")
                    l.running_mean = std::move(t);
                  else
                    l.running_var = std::move(t);
                }
              },
              layer);
        }
        block.layers.push_back(std::move(layer));
      }
      u.op = std::move(block);
    } else {
      fail("{}: unit '{}' has unknown kind '{}'", what, u.name, kind);
    }
    units.push_back(std::move(u));
  }
  return QuantizedModel(std::move(units));  // prepare() validates qparams and rebuilds the stages
}

}  // namespace

QuantizedModel load_quantized(std::span<const std::byte> bytes) {
  try {
    return load_impl(bytes, "quantized model");
  } catch (const json::exception& e) {  // defensive: every access above is checked first
    fail("quantized model: malformed description: {}", e.what());
  }
}

QuantizedModel load_quantized(const std::filesystem::path& path) {
  const std::vector<std::byte> bytes = detail::read_whole_file(path);
  try {
    return load_impl(bytes, path.string());
  } catch (const json::exception& e) {
    fail("{}: malformed description: {}", path.string(), e.what());
  }
}

}  // namespace sparq::nn
