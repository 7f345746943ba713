// The quantized model file format (save, load_quantized): a safetensors
// container (src/nn/safetensors.cpp) whose __metadata__ describes the units
// and whose tensors hold their parameters. Format: include/sparq/nn/io.hpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <nlohmann/json.hpp>

#include "io/files.hpp"
#include "nn/nn_internal.hpp"
#include "nn/safetensors.hpp"
#include "sparq/error.hpp"
#include "sparq/nn/io.hpp"
#include "util/checked_size.hpp"

namespace sparq::nn {

using sparq::detail::fail;
using json = nlohmann::json;

namespace {

template <class T>
std::vector<std::byte> as_bytes_vec(const std::vector<T>& v) {
  return detail::as_bytes_vec(std::as_bytes(std::span<const T>(v)));
}

}  // namespace

// ------------------------------------------------------------------ quantized files
namespace {

constexpr const char* kFormat = "sparq.quantized_model";
constexpr const char* kVersion = "1";
constexpr const char* kGraphFormat = "sparq.quantized_graph";

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
  // Padding beyond the kernel's reach only adds outputs that see nothing
  // but zeros, and a file could use it to make every forward ask for
  // petabytes (padding 2^24): a model file's conv padding is at most
  // dilation * (kernel - 1) on each axis ('same' padding needs half that).
  if (g.pad_h > g.dilation_h * (g.kernel_h - 1) || g.pad_w > g.dilation_w * (g.kernel_w - 1)) {
    fail("{}: conv padding {}x{} must be at most dilation * (kernel - 1) = {}x{}", r.what, g.pad_h,
         g.pad_w, g.dilation_h * (g.kernel_h - 1), g.dilation_w * (g.kernel_w - 1));
  }
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
    return detail::st_f32_finite(get(name, "F32", shape), name, what);
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

namespace {

void push_f32(std::vector<detail::StOut>& tensors, const std::string& name,
              std::vector<int64_t> shape, const std::vector<float>& v) {
  tensors.push_back({name, "F32", std::move(shape), as_bytes_vec(v)});
}

/// A unit's description; its tensors ("<name>.weight", ...) go to `tensors`.
json unit_json(const QuantizedUnit& u, std::vector<detail::StOut>& tensors) {
  auto add_f32 = [&](const std::string& name, std::vector<int64_t> shape,
                     const std::vector<float>& v) { push_f32(tensors, name, std::move(shape), v); };
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
  return j;
}

/// The file's metadata with its format and version checked; `noun` and
/// `loader` name what it must be and what loads the other sparq kind.
void check_format(const detail::StFile& file, const std::string& what, const char* format,
                  const char* noun, const char* other_format, const char* other_loader) {
  const auto fmt_it = file.metadata.find("format");
  if (fmt_it == file.metadata.end() || fmt_it->second != format) {
    const bool other = fmt_it != file.metadata.end() && fmt_it->second == other_format;
    fail("{}: not a sparq {} (__metadata__.format must be '{}'{})", what, noun, format,
         other ? fmt::format(", got '{}': load it with {}", other_format, other_loader)
               : std::string());
  }
  const auto ver = file.metadata.find("format_version");
  if (ver == file.metadata.end() || ver->second != kVersion) {
    fail("{}: unsupported format_version '{}' (this build reads version {})", what,
         ver == file.metadata.end() ? "(missing)" : ver->second, kVersion);
  }
}

/// The JSON description in __metadata__[key], parsed with every check,
/// after check_format.
json read_description(const detail::StFile& file, const std::string& what, const char* format,
                      const char* noun, const char* other_format, const char* other_loader,
                      const char* key) {
  check_format(file, what, format, noun, other_format, other_loader);
  const auto model_it = file.metadata.find(key);
  if (model_it == file.metadata.end()) fail("{}: __metadata__ has no '{}' description", what, key);
  if (detail::json_depth(model_it->second) > 8)
    fail("{}: model description is nested too deeply", what);
  std::string duplicate;
  int duplicate_depth = 0;
  json desc = detail::parse_json_unique(model_it->second, duplicate, duplicate_depth);
  if (desc.is_discarded()) fail("{}: the model description is not valid JSON", what);
  if (!duplicate.empty())
    fail("{}: model description: key '{}' appears twice in one object", what, duplicate);
  return desc;
}

}  // namespace

void save(const QuantizedModel& model, const std::filesystem::path& path) {
  json units = json::array();
  std::vector<detail::StOut> tensors;
  for (const QuantizedUnit& u : model.units()) units.push_back(unit_json(u, tensors));
  const json description = {{"units", units}};
  const std::map<std::string, std::string> metadata{
      {"format", kFormat}, {"format_version", kVersion}, {"model", description.dump()}};
  sparq::detail::write_file_atomically(path, detail::build_safetensors(tensors, metadata));
}

namespace {

/// Sets parameter `pname` ("weight", "bias", "running_mean", ...) of a layer.
void set_layer_param(Layer& layer, const std::string& pname, Tensor t) {
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

/// A unit from its description and tensors; QLinear/QConv2d still need prepare().
QuantizedUnit unit_from(const Reader& r, const json& j, const TensorSource& src) {
  const std::string& what = r.what;
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
      for (const auto& param : param_shapes(layer)) {
        set_layer_param(
            layer, param.first,
            Tensor(param.second,
                   src.f32(u.name + "." + std::to_string(i) + "." + param.first, param.second)));
      }
      block.layers.push_back(std::move(layer));
    }
    u.op = std::move(block);
  } else {
    fail("{}: unit '{}' has unknown kind '{}'", what, u.name, kind);
  }
  return u;
}

QuantizedModel load_impl(std::span<const std::byte> bytes, const std::string& what) {
  const detail::StFile file = detail::parse_safetensors(bytes, what);
  const Reader r{what};
  const json desc = read_description(file, what, kFormat, "quantized model", kGraphFormat,
                                     "load_quantized_graph", "model");
  const json& units_j = r.field(desc, "units");
  if (!units_j.is_array()) fail("{}: model description: 'units' must be an array", what);
  const TensorSource src{file, what};
  std::vector<QuantizedUnit> units;
  for (const json& j : units_j) units.push_back(unit_from(r, j, src));
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
  const std::vector<std::byte> bytes = sparq::detail::read_regular_file(path, "load_quantized");
  try {
    return load_impl(bytes, path.string());
  } catch (const json::exception& e) {
    fail("{}: malformed description: {}", path.string(), e.what());
  }
}

// ------------------------------------------------------------------ quantized graph files
namespace {

/// An FP32 graph operator's description (hyper-parameters only; its
/// parameters are tensors "<step>.<param>", an int8 Embedding's
/// "<step>.rows_int8" and "<step>.row_scales").
json node_json(const NodeOp& op) {
  return std::visit(
      [](const auto& o) -> json {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, Layer>) {
          return {{"op", "Layer"}, {"layer", layer_json(o)}};
        } else {
          json j = {{"op", T::kind}};
          if constexpr (std::is_same_v<T, AvgPool2d>) {
            j.update({{"kernel", {o.kernel_h, o.kernel_w}},
                      {"stride", {o.stride_h, o.stride_w}},
                      {"padding", {o.pad_h, o.pad_w}},
                      {"count_include_pad", o.count_include_pad}});
          } else if constexpr (std::is_same_v<T, AdaptiveAvgPool2d>) {
            j["output"] = {o.out_h, o.out_w};
          } else if constexpr (std::is_same_v<T, Embedding>) {
            j.update({{"num_embeddings", o.num_embeddings},
                      {"embedding_dim", o.embedding_dim},
                      {"positional", o.positional},
                      {"fixed_row", o.fixed_row},
                      {"int8_rows", o.int8_rows()}});
          } else if constexpr (std::is_same_v<T, LayerNorm>) {
            j.update({{"normalized_shape", o.normalized_shape}, {"eps", o.eps}});
          } else if constexpr (std::is_same_v<T, GELU>) {
            j["tanh_approximation"] = o.tanh_approximation;
          } else if constexpr (std::is_same_v<T, SelectIndex>) {
            j.update({{"axis", o.axis}, {"index", o.index}});
          } else if constexpr (std::is_same_v<T, Reshape>) {
            j["shape"] = o.shape;
          } else if constexpr (std::is_same_v<T, Mean>) {
            j["axis"] = o.axis;
          } else if constexpr (std::is_same_v<T, Attention>) {
            j.update({{"heads", o.heads},
                      {"products", o.products == Attention::Products::int8 ? "int8" : "fp32"}});
          } else if constexpr (std::is_same_v<T, ChannelScale>) {
            j["channels"] = o.scale.numel();
          }
          return j;
        }
      },
      op);
}

void node_tensors(const NodeOp& op, const std::string& prefix,
                  std::vector<detail::StOut>& tensors) {
  // The visitor only reads; it takes Tensor& because it serves loading too.
  detail::for_each_node_param(
      const_cast<NodeOp&>(op), prefix,
      [&](const std::string& name, Tensor& t) { push_f32(tensors, name, t.shape, t.data); });
  if (const auto* e = std::get_if<Embedding>(&op); e && e->int8_rows()) {
    tensors.push_back({prefix + "rows_int8",
                       "I8",
                       {e->num_embeddings, e->embedding_dim},
                       as_bytes_vec(e->rows_int8)});
    push_f32(tensors, prefix + "row_scales", {e->num_embeddings}, e->row_scales);
  }
}

/// A parameterless operator by kind, or nullopt.
template <class... T>
std::optional<NodeOp> plain_op(const std::string& kind) {
  std::optional<NodeOp> op;
  ((kind == T::kind ? (void)(op = T{}) : (void)0), ...);
  return op;
}

/// An FP32 graph operator from its description, parameters read from the
/// file (their shapes checked against the file before anything is
/// allocated from the sizes the description claims).
NodeOp node_from(const Reader& r, const json& j, const TensorSource& src,
                 const std::string& prefix) {
  const std::string kind = r.string(j, "op");
  constexpr int64_t kMaxSize = int64_t{1} << 31;
  if (kind == "Layer") {
    Layer layer = layer_from(r, r.field(j, "layer"));
    for (const auto& param : param_shapes(layer)) {
      set_layer_param(layer, param.first,
                      Tensor(param.second, src.f32(prefix + param.first, param.second)));
    }
    return layer;
  }
  if (auto op = plain_op<Add, Concat, Hardswish, SiLU, Sigmoid, Softmax, Tanh>(kind)) return *op;
  if (kind == "AvgPool2d") {
    AvgPool2d p;
    std::tie(p.kernel_h, p.kernel_w) = std::tuple_cat(r.pair(j, "kernel", 1, kMaxDim));
    std::tie(p.stride_h, p.stride_w) = std::tuple_cat(r.pair(j, "stride", 1, kMaxDim));
    std::tie(p.pad_h, p.pad_w) = std::tuple_cat(r.pair(j, "padding", 0, kMaxDim));
    p.count_include_pad = r.boolean(j, "count_include_pad");
    p.validate();
    return p;
  }
  if (kind == "AdaptiveAvgPool2d") {
    AdaptiveAvgPool2d p;
    std::tie(p.out_h, p.out_w) = std::tuple_cat(r.pair(j, "output", 1, kMaxDim));
    return p;
  }
  if (kind == "Embedding") {
    const int64_t n = r.integer(j, "num_embeddings", 1, kMaxSize);
    const int64_t d = r.integer(j, "embedding_dim", 1, kMaxSize);
    const bool positional = r.boolean(j, "positional");
    const int64_t row = r.integer(j, "fixed_row", -1, kMaxSize);
    if (r.boolean(j, "int8_rows")) {
      std::vector<int8_t> rows = src.i8(prefix + "rows_int8", {n, d});
      std::vector<float> scales = src.f32(prefix + "row_scales", {n});
      for (std::size_t i = 0; i < scales.size(); ++i) {
        if (!(scales[i] > 0.0f))
          fail("{}: tensor '{}row_scales'[{}] = {} must be > 0", r.what, prefix, i, scales[i]);
      }
      Embedding e(n, d, positional, row);
      e.weight = Tensor{};
      e.rows_int8 = std::move(rows);
      e.row_scales = std::move(scales);
      return e;
    }
    std::vector<float> w = src.f32(prefix + "weight", {n, d});
    Embedding e(n, d, positional, row);
    e.weight.data = std::move(w);
    return e;
  }
  if (kind == "LayerNorm") {
    const int64_t n = r.integer(j, "normalized_shape", 1, kMaxSize);
    std::vector<float> w = src.f32(prefix + "weight", {n});
    std::vector<float> b = src.f32(prefix + "bias", {n});
    LayerNorm ln(n, r.number(j, "eps"));
    ln.weight.data = std::move(w);
    ln.bias.data = std::move(b);
    return ln;
  }
  if (kind == "GELU") return GELU{.tanh_approximation = r.boolean(j, "tanh_approximation")};
  if (kind == "SelectIndex") {
    return SelectIndex{.axis = r.integer(j, "axis", -kMaxDim, kMaxDim),
                       .index = r.integer(j, "index", -kMaxSize, kMaxSize)};
  }
  if (kind == "Reshape") {
    const json& shape = r.field(j, "shape");
    if (!shape.is_array() || shape.size() > 8)
      fail("{}: model description: Reshape 'shape' must be an array of at most 8 sizes", r.what);
    Reshape op;
    for (const json& v : shape) {
      const json size = {{"size", v}};
      op.shape.push_back(r.integer(size, "size", -1, kMaxSize));
    }
    return op;
  }
  if (kind == "Mean") return Mean{.axis = r.integer(j, "axis", -kMaxDim, kMaxDim)};
  if (kind == "Attention") {
    Attention a(r.integer(j, "heads", 1, kMaxDim));
    const std::string p = r.string(j, "products");
    if (p != "fp32" && p != "int8")
      fail("{}: model description: Attention products '{}' must be fp32 or int8", r.what, p);
    a.products = p == "int8" ? Attention::Products::int8 : Attention::Products::fp32;
    return a;
  }
  if (kind == "ChannelScale") {
    const int64_t c = r.integer(j, "channels", 1, kMaxSize);
    std::vector<float> s = src.f32(prefix + "scale", {c});
    ChannelScale cs(c);
    cs.scale.data = std::move(s);
    return cs;
  }
  fail("{}: model description: unknown graph operator '{}'", r.what, kind);
}

std::vector<std::string> strings_from(const Reader& r, const json& j, const char* key) {
  const json& v = r.field(j, key);
  if (!v.is_array()) fail("{}: model description: '{}' must be an array of names", r.what, key);
  std::vector<std::string> out;
  for (const json& s : v) {
    if (!s.is_string() || s.get<std::string>().empty())
      fail("{}: model description: '{}' must hold non-empty names (got {})", r.what, key,
           s.dump().substr(0, 80));
    out.push_back(s.get<std::string>());
  }
  return out;
}

QuantizedGraph load_graph_impl(std::span<const std::byte> bytes, const std::string& what) {
  const detail::StFile file = detail::parse_safetensors(bytes, what);
  const Reader r{what};
  const json desc = read_description(file, what, kGraphFormat, "quantized graph", kFormat,
                                     "load_quantized", "graph");
  const json& steps_j = r.field(desc, "steps");
  if (!steps_j.is_array() || steps_j.empty())
    fail("{}: model description: 'steps' must be a non-empty array", what);
  const TensorSource src{file, what};
  auto impl = std::make_shared<QuantizedGraph::Impl>();
  impl->inputs = strings_from(r, desc, "inputs");
  impl->outputs = strings_from(r, desc, "outputs");
  // The names and wiring are checked by building them as a Graph (unique
  // names, inputs computed before their readers, each operator's input
  // count, known outputs); an INT8 unit stands there as a one-input ReLU.
  Graph wiring(impl->inputs);
  for (const json& j : steps_j) {
    QuantizedGraph::Impl::Step s;
    s.name = r.string(j, "name");
    s.inputs = strings_from(r, j, "inputs");
    s.covers = strings_from(r, j, "covers");
    const bool unit = j.is_object() && j.contains("unit");
    if (unit) {
      QuantizedUnit u = unit_from(r, j.at("unit"), src);
      if (auto* l = std::get_if<QLinear>(&u.op)) l->prepare();
      if (auto* c = std::get_if<QConv2d>(&u.op)) c->prepare();
      s.op = std::move(u);
    } else {
      s.op = node_from(r, r.field(j, "node"), src, s.name + ".");
    }
    // The operator moves through `wiring` and back, so nothing is copied.
    wiring.add(s.name, unit ? NodeOp{Layer{ReLU{}}} : std::move(std::get<NodeOp>(s.op)), s.inputs);
    if (!unit) s.op = std::move(wiring.op(s.name));
    if (j.contains("residual")) {
      s.residual = r.string(j, "residual");
      const auto* u = std::get_if<QuantizedUnit>(&s.op);
      const auto* conv = u ? std::get_if<QConv2d>(&u->op) : nullptr;
      if (!conv || conv->mode != QuantMode::static_ || conv->depthwise()) {
        fail("{}: step '{}' has a residual but is no static, non-depthwise QConv2d", what, s.name);
      }
      const int64_t at = wiring.find(s.residual);
      const bool input =
          std::find(impl->inputs.begin(), impl->inputs.end(), s.residual) != impl->inputs.end();
      if (!input && (at < 0 || at + 1 >= static_cast<int64_t>(wiring.size()))) {
        fail("{}: step '{}' reads residual '{}', which no earlier step or input computes", what,
             s.name, s.residual);
      }
      s.residual_qparams = r.qparams(j, "residual_qparams");
      s.residual_multipliers = detail::residual_multipliers(*conv, s.residual_qparams);
    }
    impl->steps.push_back(std::move(s));
  }
  wiring.set_outputs(impl->outputs);
  return QuantizedGraph(std::move(impl));
}

}  // namespace

void save(const QuantizedGraph& graph, const std::filesystem::path& path) {
  const QuantizedGraph::Impl& g = graph.impl();
  json steps = json::array();
  std::vector<detail::StOut> tensors;
  for (const auto& s : g.steps) {
    json j = {{"name", s.name}, {"inputs", s.inputs}, {"covers", s.covers}};
    if (const auto* u = std::get_if<QuantizedUnit>(&s.op)) {
      j["unit"] = unit_json(*u, tensors);
    } else {
      j["node"] = node_json(std::get<NodeOp>(s.op));
      node_tensors(std::get<NodeOp>(s.op), s.name + ".", tensors);
    }
    if (!s.residual.empty()) {
      j["residual"] = s.residual;
      j["residual_qparams"] = qparams_json(s.residual_qparams);
    }
    steps.push_back(std::move(j));
  }
  const json description = {{"inputs", g.inputs}, {"outputs", g.outputs}, {"steps", steps}};
  const std::map<std::string, std::string> metadata{
      {"format", kGraphFormat}, {"format_version", kVersion}, {"graph", description.dump()}};
  sparq::detail::write_file_atomically(path, detail::build_safetensors(tensors, metadata));
}

QuantizedGraph load_quantized_graph(std::span<const std::byte> bytes) {
  try {
    return load_graph_impl(bytes, "quantized graph");
  } catch (const json::exception& e) {  // defensive: every access above is checked first
    fail("quantized graph: malformed description: {}", e.what());
  }
}

QuantizedGraph load_quantized_graph(const std::filesystem::path& path) {
  const std::vector<std::byte> bytes =
      sparq::detail::read_regular_file(path, "load_quantized_graph");
  try {
    return load_graph_impl(bytes, path.string());
  } catch (const json::exception& e) {
    fail("{}: malformed description: {}", path.string(), e.what());
  }
}

}  // namespace sparq::nn
