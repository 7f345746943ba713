// The quantization workflow on graphs (graph_quantized.hpp, io.hpp).
// Model files: a residual CNN graph and a tiny BERT, static and dynamic,
// with int8 embeddings, int8 attention products and keep_fp32 overrides,
// come back with bit-identical outputs on every ISA; the write is atomic;
// truncated, corrupted and wrong-kind files give sparq::Error naming the
// file and what was expected; `sparq inspect` prints the graph. The SQNR
// fallback keeps a conv made bad on purpose FP32, and layer_report has one
// row per step with its end-to-end and isolated SQNR.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "sparq/error.hpp"
#include "sparq/nn/graph.hpp"
#include "sparq/nn/graph_quantized.hpp"
#include "sparq/nn/io.hpp"
#include "sparq/nn/models.hpp"
#include "sparq/nn/workflow.hpp"
#include "support/error_of.hpp"
#include "support/file_image.hpp"
#include "support/isa_param.hpp"
#include "support/sparq_tool.hpp"
#include "support/temp_dir.hpp"
#include "support/tiny_bert.hpp"

namespace sparq {
namespace {

nn::Tensor random_input(std::vector<int64_t> shape, uint64_t seed) {
  nn::Tensor t(std::move(shape));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (float& v : t.data) v = u(rng);
  return t;
}

// A CNN with every kind of step a graph file holds: a residual fused into
// a static conv (conv2 + bn2 + add + relu2), a depthwise conv, a 1x1 branch
// with Hardswish joined by Concat, MaxPool2d and AvgPool2d, the global
// average, Flatten, an FP32 BatchNorm that follows no conv, and two Linears,
// the last kept FP32 by an override.
nn::Graph cnn_graph(uint64_t seed) {
  using namespace nn;
  const Conv2dOptions same{.padding = {1, 1}, .bias = false};
  Graph g;
  g.add("stem", Conv2d(3, 8, 3, {.padding = {1, 1}}));
  g.add("stem_relu", ReLU());
  g.add("block.conv1", Conv2d(8, 8, 3, same));
  g.add("block.bn1", BatchNorm2d(8));
  g.add("block.relu1", ReLU());
  g.add("block.conv2", Conv2d(8, 8, 3, same));
  g.add("block.bn2", BatchNorm2d(8));
  g.add("block.add", Add(), {"block.bn2", "stem_relu"});
  g.add("block.relu2", ReLU());
  g.add("dw", Conv2d(8, 8, 3, {.padding = {1, 1}, .groups = 8}));
  g.add("side", Conv2d(8, 4, 1), {"block.relu2"});
  g.add("side_hs", Hardswish());
  g.add("cat", Concat(), {"dw", "side_hs"});
  g.add("pool", MaxPool2d(2));
  g.add("avg", AvgPool2d(2, 1));
  g.add("gap", AdaptiveAvgPool2d());
  g.add("flatten", Flatten());
  g.add("norm", BatchNorm1d(12));
  g.add("fc", Linear(12, 6));
  g.add("head", Linear(6, 3));
  g.init_parameters(seed);
  return g;
}

nn::Graph tiny_bert(uint64_t seed) {
  nn::Graph g = nn::bert(test::small_bert_config(16, 2, 2));
  g.init_parameters(seed);
  // Int8 products on one layer's attention: the flag must survive the file.
  std::get<nn::Attention>(g.op("bert.encoder.layer.0.attention.self")).products =
      nn::Attention::Products::int8;
  return g;
}

std::vector<std::byte> read_all(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::vector<char> c((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(c.size());
  std::memcpy(out.data(), c.data(), c.size());
  return out;
}

/// Saves `q`, loads it back and checks that everything it prints and
/// computes is identical; returns the loaded graph.
nn::QuantizedGraph round_trip(const nn::QuantizedGraph& q, const std::vector<nn::Tensor>& in) {
  testing::TempDir dir;
  const auto path = dir / "model.sparq";
  nn::save(q, path);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"model.sparq"});  // no temporary left
  nn::QuantizedGraph loaded = nn::load_quantized_graph(path);
  EXPECT_EQ(loaded.summary(), q.summary());
  EXPECT_EQ(loaded.step_kinds(), q.step_kinds());
  EXPECT_EQ(loaded.weight_bytes(), q.weight_bytes());
  const nn::Tensor want = q.forward(in), got = loaded.forward(in);
  EXPECT_EQ(got.shape, want.shape);
  EXPECT_EQ(got.data, want.data);  // bit-identical, not merely close
  // The in-memory loader reads the same bytes the same way.
  EXPECT_EQ(nn::load_quantized_graph(read_all(path)).forward(in).data, want.data);
  return loaded;
}

class GraphModelFileTest : public sparq::testing::IsaTest {};

TEST_P(GraphModelFileTest, ResidualCnnStaticAndDynamicAreBitIdentical) {
  const nn::Graph g = cnn_graph(3);
  const nn::LayerOverride keep{.keep_fp32 = true};
  nn::GraphCalibrator cal(g);
  for (uint64_t b = 0; b < 3; ++b) cal.observe(random_input({4, 8, 8, 3}, 10 + b));
  const nn::QuantizedGraph st = nn::quantize_static(cal, {.overrides = {{"head", keep}}});
  // The fusions the file must carry are there to be carried.
  ASSERT_NE(st.summary().find("residual 'stem_relu'"), std::string::npos) << st.summary();
  ASSERT_NE(st.summary().find("FP32 Linear(6 -> 3"), std::string::npos) << st.summary();
  const std::vector<nn::Tensor> x{random_input({2, 8, 8, 3}, 20)};
  round_trip(st, x);
  const nn::QuantizedGraph dy = nn::quantize_dynamic(
      g, {.weight_granularity = Granularity::per_tensor, .overrides = {{"head", keep}}});
  ASSERT_NE(dy.summary().find("FP32 Linear(6 -> 3"), std::string::npos) << dy.summary();
  round_trip(dy, x);
}

TEST_P(GraphModelFileTest, TinyBertStaticAndDynamicAreBitIdentical) {
  const nn::Graph g = tiny_bert(4);
  const int64_t vocab = 50;
  const std::vector<nn::Tensor> in = test::bert_batch(2, 12, vocab, 3, 5);
  nn::DynamicConfig dyn{.per_row_activations = true};
  dyn.overrides["bert.embeddings.token_type_embeddings"] = {.keep_fp32 = true};
  dyn.overrides["bert.encoder.layer.1.output.dense"] = {.keep_fp32 = true};
  const nn::QuantizedGraph dy = nn::quantize_dynamic(g, dyn);
  const std::string s = dy.summary();
  // Two tables int8, one kept FP32, int8 products on layer 0 only.
  ASSERT_NE(s.find("INT8 Embedding"), std::string::npos) << s;
  ASSERT_NE(s.find("FP32 Embedding"), std::string::npos) << s;
  ASSERT_NE(s.find("INT8 Attention"), std::string::npos) << s;
  ASSERT_NE(s.find("FP32 Attention"), std::string::npos) << s;
  // keep_fp32 on a Linear keeps it FP32 (it used to be quantized anyway).
  ASSERT_NE(s.find("FP32 Linear(32 -> 16"), std::string::npos) << s;
  round_trip(dy, in);

  nn::GraphCalibrator cal(g);
  for (uint64_t b = 0; b < 3; ++b) cal.observe(test::bert_batch(2, 12, vocab, 2, 30 + b));
  nn::StaticConfig sc;
  sc.overrides = dyn.overrides;
  round_trip(nn::quantize_static(cal, sc), in);
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(GraphModelFileTest);

// A file whose __metadata__ is `graph` (and format/version as given) and
// that holds no tensors.
std::vector<std::byte> graph_image(const std::string& graph, const std::string& version = "1") {
  std::string escaped;
  for (char c : graph) {
    if (c == '"' || c == '\\') escaped += '\\';
    escaped += c;
  }
  const std::string header =
      R"({"__metadata__":{"format":"sparq.quantized_graph","format_version":")" + version +
      R"(","graph":")" + escaped + R"("}})";
  return sparq::testing::file_image(header, {});
}

TEST(GraphModelFile, BadFilesNameTheFileAndWhatWasExpected) {
  testing::TempDir dir;
  const nn::Graph g = cnn_graph(7);
  const nn::QuantizedGraph q = nn::quantize_dynamic(g);
  const auto path = dir / "g.sparq";
  nn::save(q, path);
  const std::vector<std::byte> bytes = read_all(path);

  // Truncated: the data area is shorter than the header says.
  const auto cut = dir / "cut.sparq";
  {
    std::ofstream f(cut, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size() - 100));
  }
  EXPECT_ERROR(nn::load_quantized_graph(cut), cut.string());
  EXPECT_ERROR(nn::load_quantized_graph(dir / "missing.sparq"), "missing.sparq");

  // Wrong kind, both ways: each loader says which one reads the file.
  nn::Sequential s;
  s.add(nn::Linear(4, 3));
  s.init_parameters(1);
  const auto model = dir / "model.sparq";
  nn::save(nn::quantize_dynamic(s), model);
  EXPECT_ERROR(nn::load_quantized_graph(model),
               "not a sparq quantized graph (__metadata__.format must be "
               "'sparq.quantized_graph', got 'sparq.quantized_model': load it with "
               "load_quantized)");
  EXPECT_ERROR(nn::load_quantized(path), "load it with load_quantized_graph");

  // Corrupted descriptions.
  const std::string step_in = R"({"name":"a","inputs":["input"],"covers":["a"],)";
  EXPECT_ERROR(
      nn::load_quantized_graph(graph_image(R"({"inputs":["input"],"outputs":["a"],"steps":[)" +
                                           step_in + R"("node":{"op":"Add"}}]})")),
      "node 'a' (Add) takes 2 input(s), got 1");
  EXPECT_ERROR(
      nn::load_quantized_graph(graph_image(R"({"inputs":["input"],"outputs":["a"],"steps":[)" +
                                           step_in + R"("node":{"op":"Frobnicate"}}]})")),
      "unknown graph operator 'Frobnicate'");
  EXPECT_ERROR(nn::load_quantized_graph(
                   graph_image(R"({"inputs":["input"],"outputs":["a"],"steps":[)" + step_in +
                               R"("node":{"op":"LayerNorm","normalized_shape":4,"eps":1e-5}}]})")),
               "missing tensor 'a.weight' (F32 [4])");
  EXPECT_ERROR(
      nn::load_quantized_graph(graph_image(R"({"inputs":["input"],"outputs":["b"],"steps":[)" +
                                           step_in + R"("node":{"op":"Tanh"}}]})")),
      "'b' is not a node");
  EXPECT_ERROR(nn::load_quantized_graph(graph_image(
                   R"({"inputs":["input"],"outputs":["a"],"steps":[{"name":"a","inputs":["x"],)"
                   R"("covers":["a"],"node":{"op":"Tanh"}}]})")),
               "node 'a' reads 'x', which is neither a graph input nor a node added before it");
  EXPECT_ERROR(nn::load_quantized_graph(
                   graph_image(R"({"inputs":["input"],"outputs":["a"],"steps":[)" + step_in +
                               R"("node":{"op":"Tanh"},"residual":"input","residual_qparams":)"
                               R"({"scale":1,"zero_point":0}}]})")),
               "step 'a' has a residual but is no static, non-depthwise QConv2d");
  EXPECT_ERROR(nn::load_quantized_graph(graph_image(R"({"inputs":["input"],"outputs":["a"],)"
                                                    R"("steps":[]})")),
               "'steps' must be a non-empty array");
  EXPECT_ERROR(nn::load_quantized_graph(graph_image("{", "1")), "not valid JSON");
  EXPECT_ERROR(nn::load_quantized_graph(graph_image("{}", "2")),
               "unsupported format_version '2' (this build reads version 1)");
  // A valid minimal file loads and runs.
  const nn::QuantizedGraph tanh = nn::load_quantized_graph(graph_image(
      R"({"inputs":["input"],"outputs":["a"],"steps":[)" + step_in + R"("node":{"op":"Tanh"}}]})"));
  const nn::Tensor y = tanh.forward(nn::Tensor({1, 2}, {0.0f, 1.0f}));
  EXPECT_EQ(y.data[0], 0.0f);
  EXPECT_FLOAT_EQ(y.data[1], std::tanh(1.0f));
}

TEST(GraphModelFile, InspectPrintsTheGraph) {
  const auto tool = testing::sparq_tool();
  if (!tool) GTEST_SKIP() << "the sparq program is not built next to this test";
  testing::TempDir dir;
  const nn::Graph g = cnn_graph(9);
  nn::GraphCalibrator cal(g);
  cal.observe(random_input({4, 8, 8, 3}, 11));
  const nn::QuantizedGraph q =
      nn::quantize_static(cal, {.overrides = {{"head", {.keep_fp32 = true}}}});
  const auto path = dir / "cnn.sparq";
  nn::save(q, path);
  const testing::ToolRun r = testing::run_tool(*tool, "inspect " + path.string());
  EXPECT_EQ(r.status, 0) << r.output;
  for (const std::string& needle : {
           std::string("sparq quantized graph, format version 1, 14 steps (6 INT8 Linear/Conv2d)"),
           std::string("inputs  input\noutputs head\n"),
           std::string("block.relu2  <- block.relu1\n"),
           std::string("      covers   block.conv2 + block.add + block.relu2\n"),
           std::string("      INT8     QConv2d static relu (8 -> 8"),
           std::string("      qparams  input u8 s="),
           std::string("      residual 'stem_relu' u8 s="),
           std::string("cat  <- dw, side_hs\n      FP32     Concat, 0 bytes\n"),
           std::string("pool  <- cat\n      u8       MaxPool2d(k2x2"),
           std::string("head  <- fc\n      FP32     Linear(6 -> 3"),
           "weight bytes (as the kernels read them): " + std::to_string(q.weight_bytes()),
       }) {
    EXPECT_NE(r.output.find(needle), std::string::npos) << needle << "\n" << r.output;
  }
  // A damaged graph file: status 1 and the loader's error naming the file.
  const auto bad = dir / "bad.sparq";
  {
    const std::vector<std::byte> img =
        graph_image(R"({"inputs":["input"],"outputs":["a"],"steps":[{"name":"a","inputs":[)"
                    R"("input"],"covers":["a"],"node":{"op":"Add"}}]})");
    std::ofstream f(bad, std::ios::binary);
    f.write(reinterpret_cast<const char*>(img.data()), static_cast<std::streamsize>(img.size()));
  }
  const testing::ToolRun b = testing::run_tool(*tool, "inspect " + bad.string());
  EXPECT_EQ(b.status, 1) << b.output;
  EXPECT_NE(b.output.find(bad.string() + ": "), std::string::npos) << b.output;
  EXPECT_NE(b.output.find("takes 2 input(s), got 1"), std::string::npos) << b.output;
}

TEST(GraphWorkflow, CalibratorKeepsLeadingRowsOfEveryInput) {
  nn::GraphCalibrator cal(tiny_bert(2), {.keep_samples = 5});
  for (uint64_t b = 0; b < 3; ++b) cal.observe(test::bert_batch(3, 8, 50, 1, 60 + b));
  const auto& kept = cal.kept_samples();
  ASSERT_EQ(kept.size(), 2u);  // 3 rows, then 2: 5 in all
  const std::vector<nn::Tensor> first = test::bert_batch(3, 8, 50, 1, 60);
  EXPECT_EQ(kept[0][0].data, first[0].data);
  EXPECT_EQ(kept[0][1].data, first[1].data);
  EXPECT_EQ(kept[1][0].shape, (std::vector<int64_t>{2, 8}));
  EXPECT_EQ(kept[1][1].shape, (std::vector<int64_t>{2, 8}));
  const std::vector<nn::Tensor> second = test::bert_batch(3, 8, 50, 1, 61);
  EXPECT_TRUE(std::equal(kept[1][0].data.begin(), kept[1][0].data.end(), second[0].data.begin()));
}

TEST(GraphWorkflow, FallbackKeepsABadConvFp32AndTheReportFindsIt) {
  nn::Graph g = cnn_graph(21);
  // Channel 5 of stem_relu is always 0 (zero weights, bias -1): one weight
  // of 400 on it in block.conv1 adds nothing to the FP32 output, but a
  // per-tensor scale sized for it rounds every other weight of the conv to 0.
  auto& stem = std::get<nn::Conv2d>(std::get<nn::Layer>(g.op("stem")));
  for (int64_t i = 0; i < 27; ++i) stem.weight.data[static_cast<std::size_t>(5 * 27 + i)] = 0.0f;
  stem.bias.data[5] = -1.0f;
  std::get<nn::Conv2d>(std::get<nn::Layer>(g.op("block.conv1"))).weight.data[5] = 400.0f;
  nn::GraphCalibrator cal(g, {.keep_samples = 8});
  for (uint64_t b = 0; b < 3; ++b) cal.observe(random_input({4, 8, 8, 3}, 70 + b));
  nn::StaticConfig config;
  config.overrides["block.conv1"].weight_granularity = Granularity::per_tensor;
  const nn::QuantizedGraph bad = nn::quantize_static(cal, config);

  // The report: one row per step, named like the steps, in order.
  const nn::LayerReport r = nn::layer_report(cal, bad);
  const std::vector<std::string> kinds = bad.step_kinds();
  ASSERT_EQ(r.layers.size(), kinds.size());
  std::map<std::string, nn::LayerError> rows;
  for (const nn::LayerError& e : r.layers) rows[e.name] = e;
  ASSERT_EQ(rows.size(), kinds.size());  // unique names
  ASSERT_TRUE(rows.count("block.relu1") && rows.count("stem_relu") && rows.count("side_hs"));
  EXPECT_LT(rows["block.relu1"].isolated_sqnr_db, 20.0);
  EXPECT_GT(rows["stem_relu"].isolated_sqnr_db, 30.0);
  EXPECT_TRUE(std::isinf(rows["side_hs"].isolated_sqnr_db));  // FP32 on FP32 inputs: exact
  EXPECT_NE(rows["block.relu1"].description.find("QConv2d static relu"), std::string::npos);
  EXPECT_LT(rows["block.relu1"].sqnr_db, 20.0);
  EXPECT_NE(r.table().find("<- worst"), std::string::npos);

  config.fallback_sqnr_db = 20.0;
  const nn::QuantizedGraph fixed = nn::quantize_static(cal, config);
  const std::string s = fixed.summary();
  // block.conv1 is FP32 and its ReLU a step of its own; the rest stays INT8.
  EXPECT_NE(s.find("block.conv1  FP32 Conv2d(8 -> 8"), std::string::npos) << s;
  EXPECT_NE(s.find("block.relu1  FP32 ReLU"), std::string::npos) << s;
  EXPECT_NE(s.find("stem_relu    QConv2d static relu"), std::string::npos) << s;
  EXPECT_NE(s.find("residual 'stem_relu'"), std::string::npos) << s;
  // End to end at block.relu1 (the residual path carries most of the
  // head's signal, so the head hides the damage): FP32 there now.
  bool found = false;
  for (const nn::LayerError& e : nn::layer_report(cal, fixed).layers) {
    if (e.name != "block.relu1") continue;
    found = true;
    EXPECT_GT(e.sqnr_db, rows["block.relu1"].sqnr_db + 10.0);
  }
  EXPECT_TRUE(found);
  // Thresholds no step reaches or every step passes.
  EXPECT_EQ(nn::quantize_static(cal, {.fallback_sqnr_db = 1000.0}).summary().find("QConv2d"),
            std::string::npos);
  EXPECT_EQ(nn::quantize_static(cal, {.fallback_sqnr_db = -1000.0}).summary(),
            nn::quantize_static(cal).summary());

  // Nothing kept: the fallback and the report say so.
  nn::GraphCalibrator none(g, {.keep_samples = 0});
  none.observe(random_input({4, 8, 8, 3}, 90));
  EXPECT_ERROR(nn::quantize_static(none, {.fallback_sqnr_db = 20.0}),
               "fallback_sqnr_db is set but the calibrator kept no samples");
  EXPECT_ERROR(nn::layer_report(none, bad), "the calibrator kept no samples");
  EXPECT_ERROR(nn::quantize_static(cal, {.bias_correction = true}),
               "bias_correction is not available for graphs");
}

}  // namespace
}  // namespace sparq
