// Model files: safetensors import/export, save -> load -> identical outputs,
// and every bad-file case (truncated, corrupted, mismatched) as a clear
// sparq::Error.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "io/files.hpp"
#include "nn/safetensors.hpp"
#include "sparq/nn/nn.hpp"
#include "support/file_image.hpp"
#include "support/temp_dir.hpp"

namespace nn = sparq::nn;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using sparq::testing::TempDir;

std::vector<std::byte> read_bytes(const fs::path& p) {
  return sparq::detail::read_regular_file(p, "test");
}

void write_bytes(const fs::path& p, std::span<const std::byte> b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

/// Builds a file image from a header JSON and a data area.
std::vector<std::byte> image(const json& header, const std::vector<std::byte>& data) {
  return sparq::testing::file_image(header.dump(), data);
}

/// Parses a model file's header and its model description.
std::pair<json, json> split(const std::vector<std::byte>& bytes) {
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  json header = json::parse(std::string(reinterpret_cast<const char*>(bytes.data()) + 8, n));
  json model = json::parse(header["__metadata__"]["model"].get<std::string>());
  return {header, model};
}

std::vector<std::byte> data_of(const std::vector<std::byte>& bytes) {
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  return {bytes.begin() + static_cast<std::ptrdiff_t>(8 + n), bytes.end()};
}

std::vector<std::byte> with_model(json header, const json& model,
                                  const std::vector<std::byte>& data) {
  header["__metadata__"]["model"] = model.dump();
  return image(header, data);
}

nn::Sequential cnn() {
  nn::Sequential s;
  s.add(nn::Conv2d(2, 6, 3, {.padding = {1, 1}}))
      .add(nn::ReLU())
      .add(nn::MaxPool2d(2))
      .add(nn::Conv2d(6, 6, 3, {.stride = {2, 2}, .padding = {1, 1}, .groups = 6}))
      .add(nn::BatchNorm2d(6))  // after a depthwise conv: folded
      .add(nn::Flatten())
      .add(nn::Linear(2 * 2 * 6, 8))
      .add(nn::ReLU6())
      .add(nn::Linear(8, 3, false));
  s.init_parameters(17);
  return s;
}

nn::Tensor input(std::mt19937& rng, int64_t batch = 4) {
  nn::Tensor t({batch, 8, 8, 2});
  std::uniform_real_distribution<float> u(-1, 1);
  for (float& v : t.data) v = u(rng);
  return t;
}

// The bytes of the file nn::save writes for cnn() quantized static,
// calibrated on one batch drawn from rng: what the corruption tests edit.
std::vector<std::byte> static_model_file(std::mt19937& rng) {
  TempDir dir;
  const nn::Sequential model = cnn();  // named: the calibrator may keep a reference
  nn::Calibrator cal(model);
  cal.observe(input(rng));
  nn::save(nn::quantize_static(cal), dir / "q.sparq");
  return read_bytes(dir / "q.sparq");
}

void expect_error(const std::vector<std::byte>& bytes, const std::string& needle) {
  try {
    nn::load_quantized(std::span<const std::byte>(bytes));
    ADD_FAILURE() << "expected sparq::Error containing '" << needle << "'";
  } catch (const sparq::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(NnIo, SafetensorsRoundTripAndLoadWeights) {
  TempDir dir;
  nn::Sequential model = cnn();
  nn::save_safetensors(dir / "w.safetensors", model.state_dict(), {{"source", "test"}});
  EXPECT_EQ(nn::load_safetensors(dir / "w.safetensors"), model.state_dict());
  nn::Sequential other = cnn();
  other.init_parameters(99);
  nn::load_weights(other, dir / "w.safetensors");
  EXPECT_EQ(other.state_dict(), model.state_dict());

  // rename: the file uses a prefix.
  nn::TensorMap prefixed;
  for (const auto& [k, v] : model.state_dict()) prefixed["model." + k] = v;
  prefixed["unused"] = nn::Tensor({1});
  nn::save_safetensors(dir / "p.safetensors", prefixed);
  other.init_parameters(98);
  nn::load_weights(other, dir / "p.safetensors", [](const std::string& n) { return "model." + n; });
  EXPECT_EQ(other.state_dict(), model.state_dict());
}

TEST(NnIo, LoadWeightsErrorsNameTensorShapeAndDtype) {
  TempDir dir;
  nn::Sequential model = cnn();
  auto check = [&](const nn::TensorMap& tensors, const std::string& needle) {
    nn::save_safetensors(dir / "bad.safetensors", tensors);
    try {
      nn::load_weights(model, dir / "bad.safetensors");
      ADD_FAILURE() << "expected an error containing " << needle;
    } catch (const sparq::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  nn::TensorMap sd = model.state_dict();
  sd.erase("6.bias");
  check(sd, "missing tensor '6.bias'");
  sd = model.state_dict();
  sd["0.weight"] = nn::Tensor({6, 3, 3, 3});
  check(sd, "has shape [6, 3, 3, 3]; parameter '0.weight' expects [6, 3, 3, 2]");
  // dtype: write an F16 tensor by hand.
  std::vector<nn::detail::StOut> out;
  for (const auto& [k, v] : model.state_dict()) {
    std::vector<std::byte> b(v.data.size() * 4);
    std::memcpy(b.data(), v.data.data(), b.size());
    out.push_back({k, "F32", v.shape, b});
  }
  out[0].dtype = "F16";
  out[0].bytes.resize(out[0].bytes.size() / 2);
  const auto bytes = nn::detail::build_safetensors(out, {});
  write_bytes(dir / "f16.safetensors", bytes);
  try {
    nn::load_weights(model, dir / "f16.safetensors");
    ADD_FAILURE();
  } catch (const sparq::Error& e) {
    EXPECT_NE(std::string(e.what()).find("dtype F16; parameter '" + out[0].name + "' expects F32"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(nn::load_safetensors(dir / "f16.safetensors"), sparq::Error);
  EXPECT_THROW(nn::load_safetensors(dir / "does-not-exist.safetensors"), sparq::Error);
}

TEST(NnIo, SaveLoadGivesIdenticalOutputs) {
  TempDir dir;
  std::mt19937 rng(2);
  nn::Sequential model = cnn();
  nn::CalibrationConfig cc;
  cc.observer.kind = sparq::ObserverKind::minmax;
  nn::Calibrator cal(model, cc);
  cal.observe(input(rng, 8));
  nn::StaticConfig sc;
  sc.overrides["6"].keep_fp32 = true;  // an FP32 block in the file too
  sc.overrides["3"].weight_granularity = sparq::Granularity::per_tensor;
  const std::vector<nn::QuantizedModel> models{
      nn::quantize_static(cal, sc), nn::quantize_dynamic(model),
      nn::quantize_dynamic(model, {.per_row_activations = true})};
  for (const nn::QuantizedModel& q : models) {
    nn::save(q, dir / "q.sparq");
    const nn::QuantizedModel back = nn::load_quantized(dir / "q.sparq");
    EXPECT_EQ(back.summary(), q.summary());
    EXPECT_EQ(back.weight_bytes(), q.weight_bytes());
    const nn::Tensor x = input(rng);
    EXPECT_EQ(back.forward(x).data, q.forward(x).data);
    // Saving again gives the same bytes (deterministic format).
    nn::save(back, dir / "q2.sparq");
    EXPECT_EQ(read_bytes(dir / "q.sparq"), read_bytes(dir / "q2.sparq"));
  }
  // The quantized file is also a valid safetensors file for generic tools.
  const auto f = nn::detail::parse_safetensors(read_bytes(dir / "q.sparq"), "q");
  EXPECT_EQ(f.tensors.at("0.weight").dtype, "I8");
}

TEST(NnIo, TruncatedFilesAreErrors) {
  TempDir dir;
  std::mt19937 rng(3);
  const nn::Sequential model = cnn();
  nn::save(nn::quantize_dynamic(model), dir / "q.sparq");
  const std::vector<std::byte> bytes = read_bytes(dir / "q.sparq");
  // Every prefix shorter than the whole file fails cleanly.
  for (std::size_t n = 0; n < bytes.size(); n += (n < 64 ? 1 : 7)) {
    const std::vector<std::byte> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_THROW(nn::load_quantized(std::span<const std::byte>(cut)), sparq::Error) << n;
  }
  const std::vector<std::byte> last(bytes.begin(), bytes.end() - 1);
  write_bytes(dir / "cut.sparq", last);
  try {
    nn::load_quantized(dir / "cut.sparq");
    FAIL();
  } catch (const sparq::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cut.sparq"), std::string::npos) << e.what();
  }
}

TEST(NnIo, CorruptedFilesAreErrorsNeverCrashes) {
  std::mt19937 rng(4);
  const std::vector<std::byte> bytes = static_model_file(rng);
  // Random byte flips anywhere: either still a valid model, or a sparq::Error.
  std::uniform_int_distribution<std::size_t> pos(0, bytes.size() - 1);
  int errors = 0;
  for (int i = 0; i < 300; ++i) {
    std::vector<std::byte> b = bytes;
    for (int j = 0; j < 3; ++j) b[pos(rng)] = static_cast<std::byte>(rng());
    try {
      nn::load_quantized(std::span<const std::byte>(b));
    } catch (const sparq::Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 0);

  expect_error({}, "truncated");
  std::vector<std::byte> huge = bytes;
  const uint64_t big = uint64_t{1} << 40;
  std::memcpy(huge.data(), &big, 8);
  expect_error(huge, "header length");
  std::vector<std::byte> not_json = bytes;
  not_json[8] = std::byte{'x'};
  expect_error(not_json, "not valid JSON");
  expect_error(image(json::array({1, 2}), {}), "must be a JSON object");
  std::string deep(5000, '[');
  expect_error(image(json::parse("{}"), {}), "not a sparq quantized model");
  expect_error(sparq::testing::file_image(deep, {}), "nested deeper");
}

TEST(NnIo, MismatchedFilesAreErrors) {
  std::mt19937 rng(5);
  const std::vector<std::byte> bytes = static_model_file(rng);
  const auto parts = split(bytes);  // no structured binding: clang 14 cannot capture it in lambdas
  const json& header = parts.first;
  const json& model_j = parts.second;
  const std::vector<std::byte> data = data_of(bytes);
  ASSERT_NO_THROW(
      nn::load_quantized(std::span<const std::byte>(with_model(header, model_j, data))));

  auto tensor_edit = [&](const std::string& name, const std::string& field, const json& value) {
    json h = header;
    h[name][field] = value;
    return image(h, data);
  };
  expect_error(tensor_edit("0.weight", "dtype", "F32"), "data_offsets cover");
  expect_error(tensor_edit("0.weight", "dtype", "Q4"), "unknown dtype 'Q4'");
  expect_error(tensor_edit("0.weight", "shape", json::array({6, 3, 3, 3})), "data_offsets cover");
  expect_error(tensor_edit("0.weight", "shape", json::array({-6, 3})), "non-negative integer");
  expect_error(tensor_edit("0.weight", "data_offsets", json::array({0, 1u << 30})), "begin <= end");
  expect_error(tensor_edit("0.weight", "data_offsets", json::array({10, 5})), "begin <= end");
  expect_error(tensor_edit("0.weight", "data_offsets", json::array({0})), "data_offsets");
  expect_error(tensor_edit("0.weight", "shape", json::array({uint64_t{1} << 62, 4})),
               "exceeds the limit");
  {
    // The data area must be tiled exactly (no gap): drop the tensor's bytes
    // too and move the tensors behind it.
    json h = header;
    const uint64_t begin = h["0.weight_scale"]["data_offsets"][0];
    const uint64_t end = h["0.weight_scale"]["data_offsets"][1];
    h.erase("0.weight_scale");
    expect_error(image(h, data), "a gap of");
    for (auto& [name, t] : h.items()) {
      if (name == "__metadata__" || t["data_offsets"][0].get<uint64_t>() < end) continue;
      t["data_offsets"] = {t["data_offsets"][0].get<uint64_t>() - (end - begin),
                           t["data_offsets"][1].get<uint64_t>() - (end - begin)};
    }
    std::vector<std::byte> d = data;
    d.erase(d.begin() + static_cast<std::ptrdiff_t>(begin),
            d.begin() + static_cast<std::ptrdiff_t>(end));
    expect_error(image(h, d), "missing tensor '0.weight_scale'");
  }
  {
    // A consistent tensor of the wrong shape for the layer.
    json h = header;
    h["0.bias"]["shape"] = json::array({3, 2});
    expect_error(image(h, data), "tensor '0.bias' has shape [3, 2]; expected [6]");
    h = header;
    h["0.bias"]["dtype"] = "I32";
    expect_error(image(h, data), "tensor '0.bias' has dtype I32; expected F32");
  }
  {
    json h = header;
    h["__metadata__"]["format_version"] = "2";
    expect_error(image(h, data), "unsupported format_version '2'");
    h = header;
    h["__metadata__"]["format"] = "other";
    expect_error(image(h, data), "not a sparq quantized model");
    h = header;
    h["__metadata__"]["model"] = "{";
    expect_error(image(h, data), "not valid JSON");
    h = header;
    h["__metadata__"]["model"] = 3;
    expect_error(image(h, data), "must be a string");
  }
  auto unit_edit = [&](std::size_t unit, const std::string& field, const json& value) {
    json m = model_j;
    if (value.is_null()) {
      m["units"][unit].erase(field);
    } else {
      m["units"][unit][field] = value;
    }
    return with_model(header, m, data);
  };
  expect_error(unit_edit(0, "kind", "qlstm"), "unknown kind 'qlstm'");
  expect_error(unit_edit(0, "in", 3), "has shape [6, 3, 3, 2]; expected [6, 3, 3, 3]");
  expect_error(unit_edit(0, "in", "two"), "'in' must be an integer");
  expect_error(unit_edit(0, "groups", 4), "groups (4) must divide");
  expect_error(unit_edit(0, "stride", json::array({0, 1})), "must be in [1,");
  expect_error(unit_edit(0, "mode", "fast"), "mode 'fast'");
  expect_error(unit_edit(0, "activation", "gelu"), "activation 'gelu'");
  expect_error(unit_edit(0, "weights", "sparse99"), "unknown weights kind");
  expect_error(unit_edit(0, "input_qparams", json{{"scale", -1.0}, {"zero_point", 0}}),
               "must be finite and > 0");
  expect_error(unit_edit(0, "input_qparams", json{{"scale", 1e-3}, {"zero_point", 300}}),
               "zero_point");
  expect_error(unit_edit(0, "output_qparams", json{{"scale", 1e-30}, {"zero_point", 0}}),
               "must be < 2^30");
  expect_error(unit_edit(0, "per_channel", false),
               "tensor '0.weight_scale' has shape [6]; expected [1]");
  expect_error(unit_edit(0, "bias", nullptr), "missing field 'bias'");
  expect_error(unit_edit(1, "kernel", json::array({1u << 30, 2})), "must be in [1,");
  {
    json m = model_j;
    m["units"] = json::object();
    expect_error(with_model(header, m, data), "'units' must be an array");
    m = model_j;
    m["units"].push_back(
        {{"name", "9"},
         {"kind", "fp32"},
         {"layers", json::array({{{"kind", "linear"}, {"in", 4}, {"out", 2}, {"bias", false}}})}});
    expect_error(with_model(header, m, data), "missing tensor '9.0.weight'");
  }
  // Corrupted weight scales in the data area (NaN) are caught too.
  {
    std::vector<std::byte> d = data;
    const auto& t = header["0.weight_scale"]["data_offsets"];
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::memcpy(d.data() + t[0].get<std::size_t>(), &nan, 4);
    expect_error(image(header, d), "tensor '0.weight_scale' value [0] is nan");
  }
}
