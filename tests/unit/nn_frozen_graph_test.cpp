// nn::freeze: the frozen graph's outputs against Graph::forward on the
// BatchNorm-folded graph (bit-identical: the same GEMM on the same packed
// weights, the same element-wise arithmetic), its fusions and in-place steps
// (which must never overwrite a value another step still reads), the weight
// snapshot, and its errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "sparq/error.hpp"
#include "sparq/nn/graph.hpp"
#include "sparq/nn/graph_frozen.hpp"
#include "sparq/nn/models.hpp"
#include "support/tiny_bert.hpp"

namespace sparq::nn {
namespace {

Tensor random_tensor(std::vector<int64_t> shape, uint64_t seed) {
  Tensor t(std::move(shape));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (float& v : t.data) v = u(rng);
  return t;
}

// Non-trivial BatchNorm statistics, so that folding changes the weights.
void randomize_batchnorms(Graph& g, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> scale(0.5f, 1.5f), shift(-0.3f, 0.3f);
  for (const Node& n : g.nodes()) {
    auto* layer = std::get_if<Layer>(&g.op(n.name));
    auto* bn = layer ? std::get_if<BatchNorm>(layer) : nullptr;
    if (!bn) continue;
    for (float& v : bn->weight.data) v = scale(rng);
    for (float& v : bn->bias.data) v = shift(rng);
    for (float& v : bn->running_mean.data) v = shift(rng);
    for (float& v : bn->running_var.data) v = scale(rng);
  }
}

Conv2dOptions same3x3() { return {.padding = {1, 1}, .bias = false}; }

// Every step kind freeze treats specially: conv + BN + ReLU (fused), a
// residual Add whose inputs die there (in place), a value read by two
// nodes (a ReLU that must not run in place, a conv whose ReLU must not be
// fused), a 1x1 conv (no patch matrix), a strided 3x3, a depthwise conv with
// a ReLU, ReLU6, max pooling, and two outputs.
Graph test_net() {
  Graph g;
  g.add("stem", Conv2d(3, 16, 3, {.stride = {2, 2}, .padding = {1, 1}, .bias = false}));
  g.add("stem_bn", BatchNorm2d(16));
  g.add("stem_relu", ReLU());
  g.add("conv1", Conv2d(16, 16, 3, same3x3()));
  g.add("bn1", BatchNorm2d(16));
  g.add("relu1", ReLU());
  g.add("conv2", Conv2d(16, 16, 1, {.bias = true}));  // 1x1: straight on its input
  g.add("add", Add(), {"conv2", "stem_relu"});
  g.add("relu2", ReLU());
  // "shared" is read by two nodes: its ReLU is not fused, "shared_relu"
  // does not run in place, "shared_dw" reads the un-ReLU'd values.
  g.add("shared", Conv2d(16, 16, 3, {.padding = {1, 1}, .bias = true}), {"relu2"});
  g.add("shared_relu", ReLU(), {"shared"});
  g.add("shared_dw", Conv2d(16, 16, 3, {.padding = {1, 1}, .groups = 16}), {"shared"});
  g.add("dw_relu", ReLU6());
  g.add("sum", Add(), {"shared_relu", "dw_relu"});
  g.add("pool", MaxPool2d(2));
  g.add("twice", Add(), {"pool", "pool"});  // one value as both inputs
  g.set_outputs({"twice", "relu2"});
  g.init_parameters(7);
  randomize_batchnorms(g, 8);
  return g;
}

TEST(FrozenGraph, MatchesTheFoldedGraphBitForBit) {
  const Graph g = test_net();
  Graph folded = g;
  fold_batchnorm(folded);
  const FrozenGraph f = freeze(g);
  const std::vector<Tensor> in = {random_tensor({2, 12, 10, 3}, 1)};
  const std::vector<Tensor> want = folded.forward_outputs(in);
  const std::vector<Tensor> got = f.forward_outputs(in);
  ASSERT_EQ(got.size(), 2u);
  for (std::size_t o = 0; o < 2; ++o) {
    EXPECT_EQ(got[o].shape, want[o].shape) << o;
    EXPECT_EQ(got[o].data, want[o].data) << o;
  }
  // The unfolded graph rounds differently (BatchNorm after the conv), but
  // agrees closely: the folding itself is what fold_batchnorm's tests check.
  const std::vector<Tensor> eager = g.forward_outputs(in);
  for (std::size_t i = 0; i < eager[0].data.size(); ++i) {
    ASSERT_NEAR(got[0].data[i], eager[0].data[i], 1e-4f * (1.0f + std::fabs(eager[0].data[i])));
  }
  // The input tensor is never taken over.
  EXPECT_EQ(in[0].data, random_tensor({2, 12, 10, 3}, 1).data);
  EXPECT_EQ(f.forward(in).data, got[0].data);  // forward: the first output
}

// Whether the summary has a step (a line) named `name`.
bool has_step(const std::string& summary, const std::string& name) {
  return ("\n" + summary).find("\n" + name + " ") != std::string::npos;
}

TEST(FrozenGraph, FusesAndSkipsWhatItShould) {
  const FrozenGraph f = freeze(test_net());
  const std::string s = f.summary();
  // BatchNorms are folded away; ReLUs after a layer only they read are fused.
  EXPECT_EQ(s.find("BatchNorm"), std::string::npos) << s;
  EXPECT_TRUE(has_step(s, "stem")) << s;
  EXPECT_FALSE(has_step(s, "stem_bn")) << s;
  EXPECT_FALSE(has_step(s, "stem_relu")) << s;
  EXPECT_FALSE(has_step(s, "relu1")) << s;
  // "relu2" follows an Add (no GEMM), "shared_relu" a conv with two readers.
  EXPECT_TRUE(has_step(s, "relu2")) << s;
  EXPECT_TRUE(has_step(s, "shared_relu")) << s;
  EXPECT_NE(s.find("+ ReLU"), std::string::npos) << s;
  const std::vector<std::string> kinds = f.step_kinds();
  EXPECT_EQ(kinds.front(), "Conv2d 3x3");
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "Conv2d 1x1"), kinds.end());
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "Conv2d dw 3x3"), kinds.end());
  // Packed conv weights: the weights' floats, plus zero columns up to the
  // kernel's panel width (none on AVX2's 16, some on AVX-512's 32).
  Graph folded = test_net();
  fold_batchnorm(folded);
  EXPECT_GE(f.weight_bytes(), folded.weight_bytes());
  EXPECT_LE(f.weight_bytes(), 2 * folded.weight_bytes());
}

TEST(FrozenGraph, KeepsTheWeightsItWasFrozenWith) {
  Graph g = test_net();
  const std::vector<Tensor> in = {random_tensor({1, 8, 8, 3}, 2)};
  const FrozenGraph f = freeze(g);
  const Tensor before = f.forward(in);
  g.init_parameters(99);  // changes the graph, not the frozen copy
  EXPECT_EQ(f.forward(in).data, before.data);
  EXPECT_NE(freeze(g).forward(in).data, before.data);  // (the change matters)
}

TEST(FrozenGraph, TransformerHiddenStatesMatchTheGraph) {
  Graph g = bert(sparq::test::small_bert_config(32, 2, 4, 3));
  g.init_parameters(3);
  const std::vector<Tensor> in = sparq::test::bert_batch(2, 7, 50, 2, 4);
  const std::vector<Tensor> want = g.forward_outputs(in);
  const std::vector<Tensor> got = freeze(g).forward_outputs(in);
  ASSERT_EQ(got.size(), 2u);
  // The encoder's Linears see batch x sequence = 14 rows: the same GEMM on
  // the same packed weights.
  EXPECT_EQ(got[1].data, want[1].data);
  // The pooler and classifier see 2 rows, which Graph::forward multiplies
  // without packing (another summation order): float rounding only.
  ASSERT_EQ(got[0].shape, want[0].shape);
  for (std::size_t i = 0; i < want[0].data.size(); ++i) {
    EXPECT_NEAR(got[0].data[i], want[0].data[i], 1e-5f * (1.0f + std::fabs(want[0].data[i])));
  }
}

TEST(FrozenGraph, ErrorsNameTheNodeAndTheInputs) {
  const FrozenGraph f = freeze(test_net());
  try {
    (void)f.forward(random_tensor({1, 8, 8, 4}, 3));  // 4 channels, the stem takes 3
    FAIL() << "expected sparq::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("FrozenGraph node 'stem'"), std::string::npos) << e.what();
  }
  try {
    (void)f.forward(std::vector<Tensor>{});
    FAIL() << "expected sparq::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("got 0 input tensor(s); the graph takes 1 (input)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW((void)FrozenGraph().forward(random_tensor({1, 2}, 4)), Error);
  EXPECT_THROW((void)freeze(Graph()), Error);
}

}  // namespace
}  // namespace sparq::nn
