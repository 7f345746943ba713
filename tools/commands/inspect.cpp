// sparq inspect FILE: what a model file holds.
//
// For a sparq quantized model: every unit with its shapes, dtypes, mode,
// fused activation, qparams summary (input/output scale and zero point,
// weight scale range), weight sparsity and bytes. For a sparq quantized
// graph: its inputs and outputs, then every step (node name, the values it
// reads, the nodes it covers, INT8 unit or FP32 operator, qparams, residual,
// bytes). For any other safetensors
// file: every tensor with dtype, shape, bytes and (F32) value range and
// sparsity. The file is fully validated first: a bad file prints the
// loader's error and exits with status 1.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "command.hpp"
#include "inspect.hpp"
#include "io/files.hpp"
#include "nn/nn_internal.hpp"
#include "nn/safetensors.hpp"
#include "sparq/error.hpp"
#include "sparq/nn/nn.hpp"

namespace {

namespace nn = sparq::nn;

struct WeightStats {
  int64_t count = 0, zeros = 0;
  int64_t groups = 0, groups_2_4 = 0;  // groups of 4 consecutive inputs with >= 2 zeros
  float min_scale = 0, max_scale = 0;
};

void add_weights(WeightStats& s, const nn::QuantizedWeights& w) {
  const auto v = w.values();
  for (int64_t n = 0; n < w.n(); ++n) {
    for (int64_t k = 0; k < w.k(); ++k) s.zeros += v[n * w.k() + k] == 0;
    for (int64_t k = 0; k + 4 <= w.k(); k += 4) {
      int z = 0;
      for (int j = 0; j < 4; ++j) z += v[n * w.k() + k + j] == 0;
      ++s.groups;
      s.groups_2_4 += z >= 2;
    }
  }
  s.count += static_cast<int64_t>(v.size());
  const auto [lo, hi] = std::minmax_element(w.scales().begin(), w.scales().end());
  s.min_scale = s.count == static_cast<int64_t>(v.size()) ? *lo : std::min(s.min_scale, *lo);
  s.max_scale = std::max(s.max_scale, *hi);
}

std::string qp(const sparq::QParams& q) {
  return fmt::format("s={:.4g} zp={}", q.scale, q.zero_point);
}

void print_weights(std::FILE* out, const WeightStats& s, const std::string& kind, bool per_channel,
                   std::size_t bytes) {
  fmt::print(
      out,
      "      weights  {} int8, {} scales in [{:.4g}, {:.4g}], zeros {:.1f}%, 2:4-compatible groups "
      "{:.1f}%, {} bytes packed\n",
      kind, per_channel ? "per-channel" : "per-tensor", s.min_scale, s.max_scale,
      s.count ? 100.0 * s.zeros / s.count : 0.0, s.groups ? 100.0 * s.groups_2_4 / s.groups : 0.0,
      bytes);
}

/// The lines under a unit's header: shapes, qparams, weight statistics.
void print_unit_details(std::FILE* out, const nn::QuantizedUnit& u) {
  if (const auto* l = std::get_if<nn::QLinear>(&u.op)) {
    fmt::print(out, "      shapes   in [*, {}] -> out [*, {}], weight I8 [{}, {}], bias {}\n",
               l->in_features, l->out_features, l->out_features, l->in_features,
               l->bias.empty() ? "none" : "F32");
    if (l->mode == nn::QuantMode::static_) {
      fmt::print(out, "      qparams  input u8 {}, output u8 {}\n", qp(l->input_qparams),
                 qp(l->output_qparams));
    } else {
      fmt::print(out, "      qparams  input u8 dynamic ({}), output F32\n",
                 l->per_row ? "per row" : "per call");
    }
    WeightStats s;
    add_weights(s, *l->weights);
    print_weights(out, s, l->weights->kind(), l->weights->per_channel(), l->weights->bytes());
  } else if (const auto* c = std::get_if<nn::QConv2d>(&u.op)) {
    fmt::print(
        out,
        "      shapes   NHWC in [*, *, *, {}] -> out [*, *, *, {}], weight I8 [{}, {}, {}, {}], "
        "bias {}\n",
        c->in_channels, c->out_channels, c->out_channels, c->kernel_h, c->kernel_w,
        c->in_channels / c->groups, c->bias.empty() ? "none" : "F32");
    if (c->mode == nn::QuantMode::static_) {
      fmt::print(out, "      qparams  input u8 {}, output u8 {}\n", qp(c->input_qparams),
                 qp(c->output_qparams));
    } else {
      fmt::print(out, "      qparams  input u8 dynamic (per call), output F32\n");
    }
    WeightStats s;
    std::size_t bytes = 0;
    for (const auto& w : c->weights) {
      add_weights(s, *w);
      bytes += w->bytes();
    }
    print_weights(out, s, c->weights[0]->kind(), c->weights[0]->per_channel(), bytes);
  } else if (const auto* f = std::get_if<nn::Fp32Block>(&u.op)) {
    nn::Sequential s;
    for (const auto& l : f->layers) s.add(l);
    fmt::print(out, "      FP32 parameters: {} bytes\n", s.weight_bytes());
  }
}

int inspect_model(std::FILE* out, const nn::QuantizedModel& q, const nn::detail::StFile& file,
                  std::size_t file_size) {
  fmt::print(out,
             "sparq quantized model, format version {}, {} units, {} tensors, {} bytes on disk\n",
             file.metadata.at("format_version"), q.units().size(), file.tensors.size(), file_size);
  for (const nn::QuantizedUnit& u : q.units()) {
    fmt::print(out, "{:<4} {}\n", u.name, u.describe());
    print_unit_details(out, u);
  }
  fmt::print(out, "weight bytes (as the kernels read them): {}\n", q.weight_bytes());
  return 0;
}

/// A quantized graph: its inputs and outputs, then every step with the
/// values it reads, what runs (INT8 unit or FP32/INT8 graph operator), the
/// graph nodes it covers, its qparams and bytes.
int inspect_graph(std::FILE* out, const nn::QuantizedGraph& q, const nn::detail::StFile& file,
                  std::size_t file_size) {
  const nn::QuantizedGraph::Impl& g = q.impl();
  // QLinear/QConv2d compute in INT8; a MaxPool2d or Flatten unit only moves u8 values.
  auto int8_unit = [](const nn::QuantizedUnit& u) {
    return std::holds_alternative<nn::QLinear>(u.op) || std::holds_alternative<nn::QConv2d>(u.op);
  };
  std::size_t int8 = 0;
  for (const auto& s : g.steps) {
    const auto* u = std::get_if<nn::QuantizedUnit>(&s.op);
    int8 += u && int8_unit(*u);
  }
  fmt::print(
      out,
      "sparq quantized graph, format version {}, {} steps ({} INT8 Linear/Conv2d), {} tensors, {} "
      "bytes on disk\n",
      file.metadata.at("format_version"), g.steps.size(), int8, file.tensors.size(), file_size);
  fmt::print(out, "inputs  {}\noutputs {}\n", fmt::join(g.inputs, ", "),
             fmt::join(g.outputs, ", "));
  const std::vector<std::string> kinds = q.step_kinds();
  for (std::size_t i = 0; i < g.steps.size(); ++i) {
    const auto& s = g.steps[i];
    fmt::print(out, "{}  <- {}\n", s.name, fmt::join(s.inputs, ", "));
    if (s.covers.size() > 1) fmt::print(out, "      covers   {}\n", fmt::join(s.covers, " + "));
    if (const auto* u = std::get_if<nn::QuantizedUnit>(&s.op)) {
      fmt::print(out, "      {}     {}\n", int8_unit(*u) ? "INT8" : "u8  ", u->describe());
      print_unit_details(out, *u);
    } else {
      const nn::NodeOp& op = std::get<nn::NodeOp>(s.op);
      // step_kinds() says "INT8 Embedding" / "FP32 LayerNorm": the same word here.
      fmt::print(out, "      {}     {}, {} bytes\n", kinds[i].substr(0, 4), nn::describe(op),
                 nn::weight_bytes(op));
    }
    if (!s.residual.empty()) {
      fmt::print(out, "      residual '{}' u8 {}, added before the output rounding\n", s.residual,
                 qp(s.residual_qparams));
    }
  }
  fmt::print(out, "weight bytes (as the kernels read them): {}\n", q.weight_bytes());
  return 0;
}

int inspect_tensors(std::FILE* out, const nn::detail::StFile& file, std::size_t file_size) {
  fmt::print(out, "safetensors file, {} tensors, {} bytes on disk\n", file.tensors.size(),
             file_size);
  for (const auto& [k, v] : file.metadata)
    fmt::print(out, "metadata {} = {}\n", k, v.substr(0, 120));
  std::size_t total = 0;
  for (const auto& [name, t] : file.tensors) {
    std::string extra;
    if (t.dtype == "F32" && t.numel > 0) {
      float lo = 0, hi = 0;
      int64_t zeros = 0;
      for (int64_t i = 0; i < t.numel; ++i) {
        float v;
        std::memcpy(&v, t.bytes.data() + i * 4, 4);
        if (i == 0) lo = hi = v;
        lo = std::min(lo, v), hi = std::max(hi, v);
        zeros += v == 0.0f;
      }
      extra =
          fmt::format("  range [{:.4g}, {:.4g}], zeros {:.1f}%", lo, hi, 100.0 * zeros / t.numel);
    }
    fmt::print(out, "{:<40} {:<5} {:<20} {:>10} bytes{}\n", name, t.dtype,
               nn::shape_to_string(t.shape), t.bytes.size(), extra);
    total += t.bytes.size();
  }
  fmt::print(out, "tensor bytes: {}\n", total);
  return 0;
}

}  // namespace

namespace sparq::tool {

int inspect_bytes(std::span<const std::byte> bytes, const std::string& what, std::FILE* out) {
  const nn::detail::StFile file = nn::detail::parse_safetensors(bytes, what);
  auto it = file.metadata.find("format");
  // The loaders from bytes say "quantized model: ..."; the file's name goes first.
  auto named = [&](auto load) {
    try {
      return load();
    } catch (const Error& e) {
      sparq::detail::fail("{}: {}", what, e.what());
    }
  };
  if (it != file.metadata.end() && it->second == "sparq.quantized_model") {
    return inspect_model(out, named([&] { return nn::load_quantized(bytes); }), file, bytes.size());
  }
  if (it != file.metadata.end() && it->second == "sparq.quantized_graph") {
    return inspect_graph(out, named([&] { return nn::load_quantized_graph(bytes); }), file,
                         bytes.size());
  }
  return inspect_tensors(out, file, bytes.size());
}

}  // namespace sparq::tool

namespace {

int run_inspect(const sparq::tool::Args& args) {
  if (args.size() != 1) {
    fmt::print(stderr,
               "usage: sparq inspect FILE   (a sparq quantized model or graph, or any safetensors "
               "file)\n");
    return 2;
  }
  try {
    const std::vector<std::byte> bytes = sparq::detail::read_regular_file(args[0], "sparq inspect");
    return sparq::tool::inspect_bytes(bytes, args[0], stdout);
  } catch (const sparq::Error& e) {
    fmt::print(stderr, "sparq inspect: {}\n", e.what());
    return 1;
  }
}

const sparq::tool::Registration reg{
    "inspect", "show a model file: layers, shapes, dtypes, qparams, sparsity, bytes", run_inspect};

}  // namespace
