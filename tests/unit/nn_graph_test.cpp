// nn::Graph: construction rules, FP32 forward against the layers run by
// hand, state_dict loading (names, OIHW conversion, the side-by-side error),
// BatchNorm folding, and the INT8 graph workflow against the Sequential one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "sparq/error.hpp"
#include "sparq/nn/graph.hpp"
#include "sparq/nn/graph_quantized.hpp"
#include "sparq/nn/workflow.hpp"

namespace sparq::nn {
namespace {

Tensor random_tensor(std::vector<int64_t> shape, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  Tensor t(std::move(shape));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  for (float& v : t.data) v = u(rng);
  return t;
}

void randomize_batchnorm(BatchNorm& bn, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(0.5f, 1.5f), c(-0.3f, 0.3f);
  for (float& v : bn.weight.data) v = u(rng);
  for (float& v : bn.bias.data) v = c(rng);
  for (float& v : bn.running_mean.data) v = c(rng);
  for (float& v : bn.running_var.data) v = u(rng);
}

// SQNR of `test` against `ref`, in dB.
double sqnr_db(const Tensor& ref, const Tensor& test) {
  double s = 0, n = 0;
  for (std::size_t i = 0; i < ref.data.size(); ++i) {
    s += double(ref.data[i]) * ref.data[i];
    n += (double(ref.data[i]) - test.data[i]) * (double(ref.data[i]) - test.data[i]);
  }
  return n == 0 ? 200.0 : 10.0 * std::log10(s / n);
}

Conv2dOptions same3x3(bool bias = false) { return {.padding = {1, 1}, .bias = bias}; }

// A residual block of the ResNet basic kind on 8 channels, then a head:
//   conv1 -> bn1 -> relu1 -> conv2 -> bn2 -> add(stem) -> relu2 -> pool -> flatten -> fc
Graph residual_net(uint64_t seed) {
  Graph g;
  g.add("stem", Conv2d(3, 8, 3, same3x3(true)));
  g.add("stem_relu", ReLU());
  g.add("block.conv1", Conv2d(8, 8, 3, same3x3()));
  g.add("block.bn1", BatchNorm2d(8));
  g.add("block.relu1", ReLU());
  g.add("block.conv2", Conv2d(8, 8, 3, same3x3()));
  g.add("block.bn2", BatchNorm2d(8));
  g.add("block.add", Add(), {"block.bn2", "stem_relu"});
  g.add("block.relu2", ReLU());
  g.add("pool", MaxPool2d(2));
  g.add("flatten", Flatten());
  g.add("fc", Linear(4 * 4 * 8, 5));
  g.init_parameters(seed);
  randomize_batchnorm(std::get<BatchNorm>(std::get<Layer>(g.op("block.bn1"))), seed + 1);
  randomize_batchnorm(std::get<BatchNorm>(std::get<Layer>(g.op("block.bn2"))), seed + 2);
  return g;
}

TEST(Graph, ForwardMatchesTheLayersRunByHand) {
  const Graph g = residual_net(1);
  const Tensor x = random_tensor({2, 8, 8, 3}, 2);
  auto layer = [&](const char* name) { return std::get<Layer>(g.node(name).op); };
  Tensor stem = forward(layer("stem_relu"), forward(layer("stem"), x));
  Tensor y = forward(layer("block.conv1"), stem);
  y = forward(layer("block.relu1"), forward(layer("block.bn1"), y));
  y = forward(layer("block.bn2"), forward(layer("block.conv2"), y));
  for (std::size_t i = 0; i < y.data.size(); ++i) y.data[i] += stem.data[i];
  y = forward(layer("block.relu2"), y);
  y = forward(layer("fc"), forward(layer("flatten"), forward(layer("pool"), y)));
  const Tensor got = g.forward(x);
  EXPECT_EQ(got.shape, (std::vector<int64_t>{2, 5}));
  EXPECT_EQ(got.data, y.data);  // the same operations in the same order: bit for bit
}

TEST(Graph, FromSequentialIsTheSameModel) {
  Sequential s{Linear(6, 16), ReLU(), Linear(16, 3)};
  s.init_parameters(3);
  const Graph g = Graph::from_sequential(s);
  EXPECT_EQ(g.state_dict(), s.state_dict());  // the same names "0.weight", ...
  const Tensor x = random_tensor({4, 6}, 4);
  EXPECT_EQ(g.forward(x).data, s.forward(x).data);
}

TEST(Graph, RejectsBadNodes) {
  Graph g;
  g.add("a", ReLU());
  EXPECT_THROW(g.add("a", ReLU()), Error);                  // duplicate
  EXPECT_THROW(g.add("input", ReLU()), Error);              // an input's name
  EXPECT_THROW(g.add("", ReLU()), Error);                   // empty
  EXPECT_THROW(g.add("b", ReLU(), {"nowhere"}), Error);     // unknown input
  EXPECT_THROW(g.add("c", Add(), {"a"}), Error);            // Add takes 2
  EXPECT_THROW(g.add("d", ReLU(), {"a", "input"}), Error);  // ReLU takes 1
  EXPECT_THROW(Graph(std::vector<std::string>{"x", "x"}), Error);
  EXPECT_THROW(g.set_outputs({"nowhere"}), Error);
  try {
    g.add("e", Add(), {"a", "nowhere"});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'nowhere'"), std::string::npos) << e.what();
  }
  // An input-count error at run time names the node (an operator swapped in).
  g.add("sum", Add(), {"a", "input"});
  g.op("sum") = Layer(ReLU());
  try {
    g.forward(Tensor({2, 3}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'sum'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(g.forward(std::vector<Tensor>{}), Error);  // one input expected
}

TEST(Graph, ShapeErrorsNameTheNode) {
  Graph g;
  g.add("fc1", Linear(4, 3));
  try {
    g.forward(Tensor({2, 5}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'fc1'"), std::string::npos) << e.what();
  }
}

TEST(Graph, ConcatAndMultipleOutputs) {
  Graph g({"a", "b"});
  g.add("cat", Concat(), {"a", "b"});
  g.add("relu", ReLU(), {"cat"});
  g.set_outputs({"cat", "relu"});
  const Tensor a({1, 2, 2}, {1, -2, 3, -4}), b({1, 2, 1}, {5, -6});
  const std::vector<Tensor> out = g.forward_outputs({a, b});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].shape, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(out[0].data, (std::vector<float>{1, -2, 5, 3, -4, -6}));
  EXPECT_EQ(out[1].data, (std::vector<float>{1, 0, 5, 3, 0, 0}));
  EXPECT_THROW(g.forward_outputs({a, Tensor({2, 2, 1})}), Error);  // leading axes differ
}

TEST(Graph, LoadStateDictConvertsOihwAndListsMismatchesSideBySide) {
  Graph g = residual_net(5);
  // PyTorch's layout for every conv weight: random [O][I][H][W] tensors, and
  // what loading them must give (oihw_to_ohwi, tested in nn_layers_test).
  TensorMap pytorch = g.state_dict();
  uint64_t seed = 100;
  for (const char* conv : {"stem", "block.conv1", "block.conv2"}) {
    const std::string key = std::string(conv) + ".weight";
    const std::vector<int64_t>& ohwi = pytorch.at(key).shape;
    pytorch[key] = random_tensor({ohwi[0], ohwi[3], ohwi[1], ohwi[2]}, ++seed);
  }
  TensorMap ours = pytorch;
  for (const char* conv : {"stem", "block.conv1", "block.conv2"}) {
    const std::string key = std::string(conv) + ".weight";
    ours[key] = oihw_to_ohwi(pytorch.at(key));
  }
  pytorch["block.bn1.num_batches_tracked"] = Tensor({1});  // PyTorch exports it; ignored
  Graph h = residual_net(6);
  h.load_state_dict(pytorch, true, ConvWeightLayout::oihw);
  EXPECT_EQ(h.state_dict(), ours);

  // A renamed parameter: both lists in the error, and nothing changed.
  TensorMap renamed = ours;
  renamed["head.weight"] = renamed.at("fc.weight");
  renamed.erase("fc.weight");
  Graph k = residual_net(7);
  const TensorMap before = k.state_dict();
  try {
    k.load_state_dict(renamed);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("fc.weight [5, 128]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("head.weight [5, 128]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("1 parameter(s) missing and 1 tensor(s) unused"), std::string::npos) << msg;
  }
  EXPECT_EQ(k.state_dict(), before);
  k.load_state_dict(renamed, false);  // non-strict: the rest loads
  EXPECT_EQ(k.state_dict().at("stem.weight"), ours.at("stem.weight"));
  EXPECT_EQ(k.state_dict().at("fc.weight"), before.at("fc.weight"));
  // A wrong shape names the parameter and both shapes.
  TensorMap bad = ours;
  bad["fc.bias"] = Tensor({4});
  EXPECT_THROW(k.load_state_dict(bad), Error);
}

TEST(Graph, FoldBatchNormKeepsTheOutput) {
  Graph g = residual_net(8);
  const Tensor x = random_tensor({2, 8, 8, 3}, 9);
  const Tensor before = g.forward(x);
  Graph f = g;
  EXPECT_EQ(fold_batchnorm(f), 2);
  EXPECT_EQ(f.size(), g.size() - 2);
  EXPECT_LT(f.find("block.bn1"), 0);
  EXPECT_EQ(f.node("block.add").inputs, (std::vector<std::string>{"block.conv2", "stem_relu"}));
  // Folding rounds the folded weights once to float: FP32 noise, > 100 dB.
  EXPECT_GT(sqnr_db(before, f.forward(x)), 100.0);

  // A conv read by something besides its BatchNorm cannot be folded.
  Graph shared;
  shared.add("conv", Conv2d(3, 4, 1));
  shared.add("bn", BatchNorm2d(4));
  shared.add("sum", Add(), {"bn", "conv"});
  EXPECT_EQ(fold_batchnorm(shared), 0);
  EXPECT_EQ(shared.size(), 3u);
}

TEST(QuantizedGraph, DynamicEqualsTheSequentialWorkflow) {
  Sequential s{Linear(12, 32), ReLU(), Linear(32, 4)};
  s.init_parameters(10);
  const Tensor x = random_tensor({5, 12}, 11);
  const QuantizedGraph qg = quantize_dynamic(Graph::from_sequential(s));
  const QuantizedModel qm = quantize_dynamic(s);
  EXPECT_EQ(qg.forward(x).data, qm.forward(x).data);  // the same units: bit for bit
  EXPECT_EQ(qg.weight_bytes(), qm.weight_bytes());
}

TEST(QuantizedGraph, StaticEqualsTheSequentialWorkflow) {
  Sequential s{Conv2d(3, 8, 3, same3x3(true)),
               BatchNorm2d(8),
               ReLU(),
               MaxPool2d(2),
               Flatten(),
               Linear(4 * 4 * 8, 6)};
  s.init_parameters(12);
  randomize_batchnorm(std::get<BatchNorm>(s[1]), 13);
  // The same observers on both sides (minmax: no held-out rows), so the same qparams.
  const CalibrationConfig cc{.observer = {.kind = ObserverKind::minmax}};
  Calibrator cal(s, cc);
  GraphCalibrator gcal(Graph::from_sequential(s), cc);
  for (uint64_t b = 0; b < 3; ++b) {
    const Tensor batch = random_tensor({4, 8, 8, 3}, 20 + b);
    cal.observe(batch);
    gcal.observe(batch);
  }
  const QuantizedModel qm = quantize_static(cal);
  const QuantizedGraph qg = quantize_static(gcal);
  const Tensor x = random_tensor({3, 8, 8, 3}, 30);
  EXPECT_EQ(qg.forward(x).data, qm.forward(x).data);
}

TEST(QuantizedGraph, StaticResidualIsFusedAndAccurate) {
  const Graph g = residual_net(14);
  GraphCalibrator cal(g);
  for (uint64_t b = 0; b < 4; ++b) cal.observe(random_tensor({8, 8, 8, 3}, 40 + b));
  const QuantizedGraph q = quantize_static(cal);
  const std::string summary = q.summary();
  // conv2 + bn2 (folded) + add + relu2 run as one step named after the ReLU.
  EXPECT_NE(summary.find("residual 'stem_relu'"), std::string::npos) << summary;
  EXPECT_NE(summary.find("block.conv2 + block.add + block.relu2"), std::string::npos) << summary;
  const Tensor x = random_tensor({8, 8, 8, 3}, 50);
  // Five 8-bit activations and weights in a row: each 8-bit rounding is
  // ~40-48 dB on its own; 25 dB leaves room for their sum and still fails if
  // the residual were dropped or mis-scaled (then the SQNR is < 10 dB).
  EXPECT_GT(sqnr_db(g.forward(x), q.forward(x)), 25.0);

  // The profiling hook: every step reported once, in order, same output.
  const std::vector<std::string> kinds = q.step_kinds();
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "QConv2d 3x3 + residual"), kinds.end());
  std::vector<std::size_t> seen;
  const Tensor visited = q.forward_visit({x}, [&](std::size_t step) { seen.push_back(step); });
  ASSERT_EQ(seen.size(), kinds.size());
  for (std::size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i);
  EXPECT_EQ(visited.data, q.forward(x).data);

  // Keeping the residual conv in FP32 turns the fusion off, and still runs.
  StaticConfig keep{.overrides = {{"block.conv2", LayerOverride{.keep_fp32 = true}}}};
  const QuantizedGraph k = quantize_static(cal, keep);
  EXPECT_EQ(k.summary().find("residual"), std::string::npos) << k.summary();
  EXPECT_GT(sqnr_db(g.forward(x), k.forward(x)), 25.0);
  EXPECT_THROW(quantize_static(cal, {.overrides = {{"pool", LayerOverride{.keep_fp32 = true}}}}),
               Error);
  EXPECT_THROW(quantize_static(cal, {.bias_correction = true}), Error);
}

TEST(QuantizedGraph, CalibratorRejectsUnknownNames) {
  const Graph g = residual_net(15);
  EXPECT_THROW(GraphCalibrator(g, {.per_layer = {{"nowhere", ObserverConfig{}}}}), Error);
  GraphCalibrator cal(g);
  EXPECT_THROW(cal.qparams("stem"), Error);  // nothing observed yet
  cal.observe(random_tensor({2, 8, 8, 3}, 60));
  EXPECT_NO_THROW(cal.qparams("stem"));
  EXPECT_THROW(cal.qparams("nowhere"), Error);
}

}  // namespace
}  // namespace sparq::nn
