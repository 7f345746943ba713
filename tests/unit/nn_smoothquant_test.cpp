// SmoothQuant (nn/smoothquant.hpp): the smoothed FP32 graph computes the
// same function wherever x / s is folded (Linear rows through Attention and
// Mean, LayerNorm of a pre-LN block, a new ChannelScale node in post-LN
// BERT); on activations with outlier channels, SmoothQuant + static INT8
// beats static INT8 alone; options and ChannelScale validate their input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "sparq/error.hpp"
#include "sparq/nn/graph.hpp"
#include "sparq/nn/graph_quantized.hpp"
#include "sparq/nn/models.hpp"
#include "sparq/nn/smoothquant.hpp"
#include "sparq/nn/workflow.hpp"
#include "support/tiny_bert.hpp"

namespace sparq::nn {
namespace {

Tensor normal_tensor(std::vector<int64_t> shape, uint64_t seed) {
  Tensor t(std::move(shape));
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  for (float& v : t.data) v = n(rng);
  return t;
}

/// Multiplies channels 3, 17, 40 of a per-channel vector (or the rows of
/// those output channels of a Linear weight) by `factor`: the outlier
/// channels transformers grow in LayerNorm gains and projections.
void add_outliers(Tensor& t, int64_t channel_size, float factor) {
  for (int64_t c : {3, 17, 40}) {
    for (int64_t i = 0; i < channel_size; ++i) {
      t.data[static_cast<std::size_t>(c * channel_size + i)] *= factor;
    }
  }
}

float max_abs(const Tensor& t) {
  float m = 0;
  for (float v : t.data) m = std::max(m, std::fabs(v));
  return m;
}

float max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape, b.shape);
  float m = 0;
  for (std::size_t i = 0; i < a.data.size(); ++i) m = std::max(m, std::fabs(a.data[i] - b.data[i]));
  return m;
}

const SmoothQuantLayer& layer_of(const SmoothQuantReport& r, const std::string& linear) {
  for (const SmoothQuantLayer& l : r.layers) {
    if (std::find(l.linears.begin(), l.linears.end(), linear) != l.linears.end()) return l;
  }
  throw std::runtime_error("no report row for " + linear);
}

/// A tiny post-LN BERT (hidden 64, 2 layers) with outlier channels in every
/// LayerNorm gain and in the value and intermediate projections.
Graph outlier_bert() {
  Graph g = bert(test::small_bert_config(64, 2, 4));
  g.init_parameters(7);
  for (const Node& n : std::vector<Node>(g.nodes())) {
    if (auto* ln = std::get_if<LayerNorm>(&g.op(n.name))) add_outliers(ln->weight, 1, 20.0f);
    if (n.name.ends_with("attention.self.value") || n.name.ends_with("intermediate.dense")) {
      Linear& l = std::get<Linear>(std::get<Layer>(g.op(n.name)));
      add_outliers(l.weight, l.in_features, 20.0f);
    }
  }
  return g;
}

/// 4 sequences of 12 tokens, two padded keys in each.
std::vector<Tensor> bert_batch(uint64_t seed) { return test::bert_batch(4, 12, 50, 2, seed); }

TEST(SmoothQuant, PostLnBertKeepsItsFunction) {
  Graph g = outlier_bert();
  std::vector<std::vector<Tensor>> calibration;
  for (uint64_t b = 0; b < 3; ++b) calibration.push_back(bert_batch(100 + b));
  const std::vector<Tensor> test = bert_batch(999);
  const std::vector<Tensor> before = g.forward_outputs(test);
  const SmoothQuantReport r = smooth_quant(g, calibration);
  const std::vector<Tensor> after = g.forward_outputs(test);
  ASSERT_EQ(before.size(), after.size());
  // Float rounding only: each smoothed product x_j w_j becomes
  // (x_j / s_j)(w_j s_j), two extra roundings of 2^-24 each, summed over
  // 64-128 terms and carried through LayerNorm (which divides by the row's
  // spread, about 1 here) and two layers; 1e-4 of the output's magnitude
  // is ~100x that, and a wrong fold (a factor of s ~ 2..20 left over)
  // changes the output by far more.
  for (std::size_t k = 0; k < before.size(); ++k) {
    EXPECT_LE(max_abs_diff(before[k], after[k]), 1e-4f * max_abs(before[k])) << "output " << k;
  }
  // The outlier channels make smoothing worth it for the outlier-fed groups,
  // and each is folded where this graph allows.
  const SmoothQuantLayer& dense = layer_of(r, "bert.encoder.layer.0.attention.output.dense");
  ASSERT_TRUE(dense.smoothed) << r.table();
  EXPECT_EQ(dense.folded_into,
            "Linear 'bert.encoder.layer.0.attention.self.value' (output channels, through "
            "Attention 'bert.encoder.layer.0.attention.self')");
  const SmoothQuantLayer& qkv = layer_of(r, "bert.encoder.layer.1.attention.self.query");
  ASSERT_TRUE(qkv.smoothed) << r.table();
  EXPECT_EQ(qkv.linears.size(), 3u);  // query, key and value share one s
  // Post-LN: the LayerNorm output is also the residual, so no LayerNorm fold.
  EXPECT_EQ(qkv.folded_into,
            "ChannelScale 'bert.encoder.layer.0.output.LayerNorm.smooth' (new node)");
  EXPECT_GE(g.find("bert.encoder.layer.0.output.LayerNorm.smooth"), 0);
  // The outlier-fed groups: smoothing evens their channels out.
  EXPECT_LT(dense.channel_ratio_after, dense.channel_ratio_before);
  EXPECT_LT(qkv.channel_ratio_after, qkv.channel_ratio_before);
  for (const SmoothQuantLayer& l : r.layers) {
    EXPECT_GE(l.sqnr_db_smoothed, l.sqnr_db_unsmoothed) << l.linears.front();
  }
}

/// input -> "ln" LayerNorm(64) -> "fc1" Linear(64, 128) -> "act" GELU ->
/// "fc2" Linear(128, 64): the start of both blocks below.
Graph layer_norm_mlp() {
  Graph g;
  g.add("ln", LayerNorm(64));
  g.add("fc1", Linear(64, 128));
  g.add("act", GELU());
  g.add("fc2", Linear(128, 64));
  return g;
}

/// Pre-LN block: input -> LayerNorm -> fc1 -> GELU -> fc2 -> Mean over the
/// tokens -> head, with outlier channels in the LayerNorm gain and fc2's
/// outputs. The LayerNorm output feeds only fc1; fc2's output reaches the
/// head only through the Mean.
Graph pre_ln_block(uint64_t seed) {
  Graph g = layer_norm_mlp();
  g.add("pool", Mean{.axis = 1});
  g.add("head", Linear(64, 10));
  g.init_parameters(seed);
  add_outliers(std::get<LayerNorm>(g.op("ln")).weight, 1, 30.0f);
  Linear& fc2 = std::get<Linear>(std::get<Layer>(g.op("fc2")));
  add_outliers(fc2.weight, fc2.in_features, 30.0f);
  return g;
}

/// Post-LN feed-forward block: LayerNorm (outlier gains) -> fc1 -> GELU ->
/// fc2, plus the LayerNorm output as the residual: the LayerNorm output is
/// shared, so fc1's smoothing needs a ChannelScale node.
Graph post_ln_block(uint64_t seed) {
  Graph g = layer_norm_mlp();
  g.add("residual", Add(), {"fc2", "ln"});
  g.init_parameters(seed);
  add_outliers(std::get<LayerNorm>(g.op("ln")).weight, 1, 30.0f);
  return g;
}

std::vector<std::vector<Tensor>> mlp_batches(int count, uint64_t seed) {
  std::vector<std::vector<Tensor>> batches;
  for (int b = 0; b < count; ++b) batches.push_back({normal_tensor({8, 16, 64}, seed + b)});
  return batches;
}

TEST(SmoothQuant, PreLnFoldsIntoLayerNormAndThroughMean) {
  Graph g = pre_ln_block(3);
  const Tensor x = normal_tensor({8, 16, 64}, 77);
  const Tensor before = g.forward(x);
  const SmoothQuantReport r = smooth_quant(g, mlp_batches(4, 10));
  // As in PostLnBertKeepsItsFunction: rounding only, ~100x below the bound.
  EXPECT_LE(max_abs_diff(before, g.forward(x)), 1e-4f * max_abs(before));
  const SmoothQuantLayer& fc1 = layer_of(r, "fc1");
  ASSERT_TRUE(fc1.smoothed) << r.table();
  EXPECT_EQ(fc1.folded_into, "LayerNorm 'ln' (weight, bias)");
  const SmoothQuantLayer& head = layer_of(r, "head");
  if (head.smoothed) {
    EXPECT_EQ(head.folded_into, "Linear 'fc2' (output channels, through Mean 'pool')");
  }
  // fc2 reads the GELU output, which no fold reaches: a ChannelScale if smoothed.
  const bool fc2_smoothed = layer_of(r, "fc2").smoothed;
  EXPECT_EQ(g.size(), fc2_smoothed ? 7u : 6u);
  if (fc2_smoothed) {
    EXPECT_EQ(layer_of(r, "fc2").folded_into, "ChannelScale 'act.smooth' (new node)");
  }
}

// Output SQNR of static INT8 (sparq's default calibration) against FP32.
double static_int8_sqnr(const Graph& g, const std::vector<std::vector<Tensor>>& calibration,
                        const Tensor& x) {
  GraphCalibrator cal(g);
  for (const auto& b : calibration) cal.observe(b);
  const QuantizedGraph q = quantize_static(cal);
  const Tensor ref = g.forward(x);
  return sqnr_db(ref.data, q.forward(x).data);
}

TEST(SmoothQuant, BeatsStaticInt8OnOutlierChannels) {
  const Graph original = post_ln_block(5);
  const auto calibration = mlp_batches(4, 20);
  const Tensor x = normal_tensor({8, 16, 64}, 555);
  Graph smoothed = original;
  const SmoothQuantReport r = smooth_quant(smoothed, calibration);
  ASSERT_TRUE(layer_of(r, "fc1").smoothed) << r.table();
  EXPECT_EQ(layer_of(r, "fc1").folded_into, "ChannelScale 'ln.smooth' (new node)");
  const double plain = static_int8_sqnr(original, calibration, x);
  const double smooth = static_int8_sqnr(smoothed, calibration, x);
  // The LayerNorm's 30x outlier channels leave the other 61 channels of
  // fc1's per-tensor u8 input a few levels; smoothing evens them out. The
  // gain measured is 5.2 dB (41.3 -> 46.5 dB); 3 dB (half the noise power)
  // fails if smoothing stops reaching fc1 or picks a bad alpha. The data
  // and kernels are deterministic, so there is no run-to-run noise.
  EXPECT_GT(smooth, plain + 3.0) << r.table();
  std::printf("static INT8 output SQNR: %.2f dB plain, %.2f dB with SmoothQuant\n%s", plain, smooth,
              r.table().c_str());
}

TEST(SmoothQuant, OptionErrorsNameTheOption) {
  Graph g = pre_ln_block(3);
  const auto batches = mlp_batches(2, 10);
  auto message = [&](const SmoothQuantOptions& o, const std::vector<std::vector<Tensor>>& b) {
    Graph copy = g;
    try {
      smooth_quant(copy, b, o);
    } catch (const Error& e) {
      EXPECT_EQ(copy.state_dict(), g.state_dict()) << "a failed call must not change the graph";
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({.alphas = {}}, batches).find("options.alphas must hold at least one"),
            std::string::npos);
  EXPECT_NE(message({.alphas = {0.5, 1.5}}, batches).find("options.alphas has 1.5"),
            std::string::npos);
  EXPECT_NE(message({.min_scale = 0.0}, batches).find("options.min_scale (0)"), std::string::npos);
  EXPECT_NE(message({.max_scale = 0.5}, batches).find("options.max_scale (0.5)"),
            std::string::npos);
  EXPECT_NE(message({.held_out_batches = -1}, batches).find("options.held_out_batches (-1)"),
            std::string::npos);
  EXPECT_NE(message({.held_out_batches = 2}, batches).find("calibration has 2 batch(es)"),
            std::string::npos);
  EXPECT_NE(message({}, {{normal_tensor({2, 16, 64}, 1), normal_tensor({2, 16, 64}, 2)}, {}})
                .find("calibration batch 0 has 2 tensor(s); the graph takes 1"),
            std::string::npos);
  Graph no_linear;
  no_linear.add("ln", LayerNorm(64));
  EXPECT_THROW(
      {
        try {
          smooth_quant(no_linear, batches);
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("no Linear node"), std::string::npos);
          throw;
        }
      },
      Error);
  // held_out_batches = 0 scores on the statistics batches: one batch is enough.
  Graph one = g;
  EXPECT_NO_THROW(smooth_quant(one, {batches[0]}, {.held_out_batches = 0}));
}

TEST(SmoothQuant, ChannelScaleValidates) {
  EXPECT_THROW(ChannelScale(0), Error);
  ChannelScale s(3);
  s.scale.data = {1.0f, 2.0f, 0.5f};
  const Tensor y = s.forward(Tensor({2, 3}, {1, 1, 1, 2, 4, 8}));
  EXPECT_EQ(y.data, (std::vector<float>{1, 2, 0.5f, 2, 8, 4}));
  try {
    s.forward(Tensor({2, 4}));
    ADD_FAILURE() << "no error for 4 channels";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 4] must have 3 channels"), std::string::npos);
  }
  EXPECT_EQ(s.describe(), "ChannelScale(3)");
}

}  // namespace
}  // namespace sparq::nn
