// Attention with INT8 products (transformer.hpp, Attention::Products::int8)
// against FP32 attention: SQNR floor on random inputs, padding still gets
// zero weight, and FP32 products as the default in Graph::forward and in the
// INT8 graph (INT8 products are opt-in until they are faster), with the
// quantized graph's step kinds saying which products run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "sparq/nn/graph.hpp"
#include "sparq/nn/graph_quantized.hpp"
#include "sparq/nn/models.hpp"
#include "sparq/nn/transformer.hpp"
#include "support/isa_param.hpp"
#include "support/tiny_bert.hpp"

namespace sparq {
namespace {

using Products = nn::Attention::Products;

nn::Tensor random_tensor(std::vector<int64_t> shape, uint64_t seed, float stddev) {
  nn::Tensor t(std::move(shape));
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  for (float& v : t.data) v = normal(rng);
  return t;
}

nn::Tensor attend(Products products, int64_t heads, const std::vector<const nn::Tensor*>& in) {
  nn::Attention a(heads);
  a.products = products;
  return a.forward(in);
}

class Int8AttentionTest : public sparq::testing::IsaTest {};

TEST_P(Int8AttentionTest, SqnrAgainstFp32AboveFloor) {
  // BERT-like statistics: q and k of unit variance per element give scores
  // q.k / sqrt(d) of unit variance, a softmax that is neither flat nor one-hot.
  const int64_t batch = 2, seq = 37, hidden = 64, heads = 4;
  const nn::Tensor q = random_tensor({batch, seq, hidden}, 1, 1.0f);
  const nn::Tensor k = random_tensor({batch, seq, hidden}, 2, 1.0f);
  const nn::Tensor v = random_tensor({batch, seq, hidden}, 3, 1.0f);
  nn::Tensor mask({batch, seq});
  for (int64_t j = 0; j < seq; ++j) {
    mask.data[static_cast<std::size_t>(j)] = 1.0f;
    mask.data[static_cast<std::size_t>(seq + j)] = j < 29 ? 1.0f : 0.0f;  // 8 padded keys
  }
  const std::vector<const nn::Tensor*> in = {&q, &k, &v, &mask};
  const nn::Tensor fp32 = attend(Products::fp32, heads, in);
  const nn::Tensor int8 = attend(Products::int8, heads, in);
  const double db = test::sqnr_db(fp32, int8);
  // Each 8-bit operand alone is ~40 dB (Gaussian rows quantized over their
  // own max, about 4 standard deviations: step / sqrt(12) against sigma);
  // the four of them (q, k, p, v) add their noise, and the softmax's
  // exponential amplifies score errors where a row is peaked. 30 dB
  // (3% RMS error) is what that leaves with margin; a wrong scale or a
  // transposed operand gives below 0 dB.
  EXPECT_GT(db, 30.0) << "SQNR " << db << " dB";
  std::printf("[%s] INT8 vs FP32 attention: SQNR %.1f dB\n",
              std::string(isa_name(GetParam())).c_str(), db);
}

TEST_P(Int8AttentionTest, PaddedKeysGetZeroWeight) {
  // Every real key's value row is the same vector c and every padded key's
  // is 2c: with zero weight on padding, each output row is sum_j p_j c = c;
  // any weight w on the padding would give (1 + w) c. The padded keys'
  // scores are made the largest, so an ignored mask would give them most
  // of the weight.
  const int64_t seq = 24, hidden = 16, heads = 2, real = 16;
  nn::Tensor q = random_tensor({1, seq, hidden}, 4, 1.0f);
  nn::Tensor k = random_tensor({1, seq, hidden}, 5, 1.0f);
  nn::Tensor v({1, seq, hidden});
  nn::Tensor mask({1, seq});
  for (int64_t j = 0; j < seq; ++j) {
    const bool padded = j >= real;
    mask.data[static_cast<std::size_t>(j)] = padded ? 0.0f : 1.0f;
    for (int64_t c = 0; c < hidden; ++c) {
      const float cc = 0.5f + 0.1f * static_cast<float>(c);
      v.data[static_cast<std::size_t>(j * hidden + c)] = padded ? 2.0f * cc : cc;
      // Padded keys aligned with every query: large positive scores.
      if (padded) k.data[static_cast<std::size_t>(j * hidden + c)] = 5.0f;
    }
  }
  for (float& x : q.data) x = std::abs(x);
  const nn::Tensor out = attend(Products::int8, heads, {&q, &k, &v, &mask});
  for (int64_t i = 0; i < seq; ++i) {
    for (int64_t c = 0; c < hidden; ++c) {
      const float cc = 0.5f + 0.1f * static_cast<float>(c);
      // p quantized per row to u8 (step max(p) / 255, so each row's weights
      // sum to 1 within ~seq * step / 2 ~ 1%) and c to s8 over the column's
      // range 2c (0.4% step): 2% of c covers both; a padded key with any
      // real weight (> 2%) breaks it.
      EXPECT_NEAR(out.data[static_cast<std::size_t>(i * hidden + c)], cc, 0.02f * cc)
          << "query " << i << " column " << c;
    }
  }
}

TEST(Int8Attention, Fp32ByDefaultOnceQuantizedAndInt8IsKept) {
  nn::Graph g = nn::bert(test::small_bert_config(32, 1, 4));
  g.init_parameters(3);
  const std::string self = "bert.encoder.layer.0.attention.self";
  ASSERT_EQ(std::get<nn::Attention>(g.op(self)).products, Products::fp32);
  auto count = [](const std::vector<std::string>& kinds, const std::string& kind) {
    return std::count(kinds.begin(), kinds.end(), kind);
  };
  const nn::QuantizedGraph fp32 = nn::quantize_dynamic(g);
  EXPECT_EQ(fp32.summary().find("int8 products"), std::string::npos) << fp32.summary();
  EXPECT_NE(fp32.summary().find("FP32 Attention(heads 4)"), std::string::npos);
  EXPECT_EQ(count(fp32.step_kinds(), "FP32 Attention"), 1);
  EXPECT_EQ(count(fp32.step_kinds(), "INT8 Attention"), 0);
  // Set on the node before quantizing, int8 is kept, and the step says so.
  std::get<nn::Attention>(g.op(self)).products = Products::int8;
  const nn::QuantizedGraph int8 = nn::quantize_dynamic(g);
  EXPECT_NE(int8.summary().find("INT8 Attention(heads 4, int8 products)"), std::string::npos)
      << int8.summary();
  EXPECT_EQ(count(int8.step_kinds(), "FP32 Attention"), 0);
  EXPECT_EQ(count(int8.step_kinds(), "INT8 Attention"), 1);
  // The step kinds line up with the steps forward_visit reports.
  std::size_t steps = 0;
  (void)int8.forward_visit(test::bert_batch(1, 5, 50, 0, 1), [&](std::size_t) { ++steps; });
  EXPECT_EQ(steps, int8.step_kinds().size());
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(Int8AttentionTest);

}  // namespace
}  // namespace sparq
