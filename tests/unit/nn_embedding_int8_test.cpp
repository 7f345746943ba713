// Int8 embedding rows (transformer.hpp, Embedding::quantize_rows; what
// quantize_dynamic / quantize_static do to every Embedding node): the rows
// and scales against a scalar reference, the lookup bit-exact with
// float(q) * scale on every ISA, the error bound against FP32, the bytes,
// the keep_fp32 override, and a bert-tiny whose quantized output barely
// moves when its embeddings become int8.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "sparq/error.hpp"
#include "sparq/nn/graph.hpp"
#include "sparq/nn/graph_quantized.hpp"
#include "sparq/nn/models.hpp"
#include "sparq/nn/transformer.hpp"
#include "support/error_of.hpp"
#include "support/isa_param.hpp"
#include "support/tiny_bert.hpp"

namespace sparq {
namespace {

// Rows of very different magnitudes (1e-3 to 1e2), row 3 all zero: each row
// must get its own scale.
nn::Embedding random_embedding(int64_t rows, int64_t dim, uint64_t seed) {
  nn::Embedding e(rows, dim);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float magnitude = std::pow(10.0f, static_cast<float>(r % 6) - 3.0f);
    for (int64_t c = 0; c < dim; ++c) {
      e.weight.data[static_cast<std::size_t>(r * dim + c)] =
          r == 3 ? 0.0f : magnitude * normal(rng);
    }
  }
  return e;
}

// Every row, in order: ids 0 .. rows-1 as a [1][rows] batch.
nn::Tensor all_ids(int64_t rows) {
  nn::Tensor ids({1, rows});
  for (int64_t r = 0; r < rows; ++r) ids.data[static_cast<std::size_t>(r)] = static_cast<float>(r);
  return ids;
}

class EmbeddingInt8Test : public sparq::testing::IsaTest {};

TEST_P(EmbeddingInt8Test, RowsScalesAndLookupMatchTheScalarReference) {
  const int64_t rows = 12, dim = 37;  // 37: a SIMD body and a tail
  nn::Embedding e = random_embedding(rows, dim, 1);
  const std::vector<float> w = e.weight.data;
  e.quantize_rows();
  ASSERT_TRUE(e.int8_rows());
  EXPECT_TRUE(e.weight.data.empty());
  ASSERT_EQ(e.row_scales.size(), static_cast<std::size_t>(rows));
  ASSERT_EQ(e.rows_int8.size(), w.size());
  const nn::Tensor y = e.forward(all_ids(rows));
  for (int64_t r = 0; r < rows; ++r) {
    // The scalar definition: symmetric narrow range, scale = max|row| / 127
    // (never below FLT_EPSILON), q = clamp(round_half_even(w * (1 / scale)), -127, 127).
    float amax = 0.0f;
    for (int64_t c = 0; c < dim; ++c) amax = std::max(amax, std::abs(w[r * dim + c]));
    const float scale = std::max(amax / 127.0f, FLT_EPSILON);
    ASSERT_EQ(e.row_scales[r], scale) << "row " << r;
    const float inv = 1.0f / scale;
    for (int64_t c = 0; c < dim; ++c) {
      const auto i = static_cast<std::size_t>(r * dim + c);
      const float q = std::nearbyint(std::clamp(w[i] * inv, -127.0f, 127.0f));
      ASSERT_EQ(e.rows_int8[i], static_cast<int8_t>(q)) << "row " << r << " column " << c;
      // Bit-exact: one float product, the same on every ISA.
      const float expected = static_cast<float>(e.rows_int8[i]) * scale;
      ASSERT_EQ(std::memcmp(&y.data[i], &expected, sizeof(float)), 0)
          << "row " << r << " column " << c << ": " << y.data[i] << " vs " << expected;
    }
  }
}

TEST_P(EmbeddingInt8Test, AllZeroRowStaysExactlyZero) {
  nn::Embedding e = random_embedding(6, 16, 2);
  e.quantize_rows();
  // compute_qparams' smallest scale (PyTorch's eps), never 0 / 0.
  EXPECT_EQ(e.row_scales[3], FLT_EPSILON);
  const nn::Tensor y = e.forward(nn::Tensor({2, 2}, {3, 3, 3, 3}));
  for (float v : y.data) {
    EXPECT_EQ(v, 0.0f);
    EXPECT_FALSE(std::signbit(v));
  }
  for (int64_t c = 0; c < 16; ++c) EXPECT_EQ(e.rows_int8[3 * 16 + c], 0);
}

TEST_P(EmbeddingInt8Test, ErrorWithinHalfAStepOfFp32) {
  // scale = max|row| / 127, so every w / scale lies in [-127, 127]: nothing
  // is clipped, and rounding to the nearest integer leaves at most half a
  // step. Float arithmetic adds relative 2^-23 to w * (1 / scale) (the
  // reciprocal and the product each round once) and 2^-24 to q * scale: at
  // most 127 * (2^-23 + 2^-24) ~ 2.3e-5 steps, so 0.5 + 1e-4 steps bounds
  // every element. A clipped, mis-scaled or shifted row breaks it.
  const int64_t rows = 30, dim = 64;
  nn::Embedding e = random_embedding(rows, dim, 3);
  const nn::Embedding fp32 = e;
  e.quantize_rows();
  const nn::Tensor ids = all_ids(rows);
  const nn::Tensor y = e.forward(ids), y32 = fp32.forward(ids);
  double worst_steps = 0;  // the largest error in steps
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = e.row_scales[static_cast<std::size_t>(r)];
    for (int64_t c = 0; c < dim; ++c) {
      const auto i = static_cast<std::size_t>(r * dim + c);
      const double err = std::abs(static_cast<double>(y.data[i]) - y32.data[i]);
      EXPECT_LE(err, (0.5 + 1e-4) * scale) << "row " << r << " column " << c;
      worst_steps = std::max(worst_steps, err / scale);
    }
  }
  // 1,920 Gaussian values put some error near half a step: the rows are
  // really rounded to 8 bits (a row kept FP32 would give 0).
  EXPECT_GT(worst_steps, 0.45);
}

INSTANTIATE_TEST_SUITE_P(AllIsas, EmbeddingInt8Test, ::testing::ValuesIn(sparq::supported_isas()),
                         sparq::testing::isa_param_name);

TEST(EmbeddingInt8, ModesBadIdsAndArguments) {
  nn::Embedding e = random_embedding(10, 4, 4);
  nn::Embedding pos(10, 4, /*positional=*/true), fixed(10, 4, false, /*fixed_row=*/7);
  pos.weight = fixed.weight = e.weight;
  e.quantize_rows();
  pos.quantize_rows();
  fixed.quantize_rows();
  EXPECT_EQ(e.describe(), "Embedding(10, 4, int8 rows)");
  EXPECT_EQ(pos.describe(), "Embedding(10, 4, positional, int8 rows)");
  // The modes read the same int8 rows as the ids would.
  const nn::Tensor by_id = e.forward(nn::Tensor({1, 3}, {0, 1, 2}));
  EXPECT_EQ(pos.forward(nn::Tensor({1, 3})).data, by_id.data);
  EXPECT_EQ(fixed.forward(nn::Tensor({1, 2})).data, e.forward(nn::Tensor({1, 2}, {7, 7})).data);
  // The FP32 Embedding's id errors, unchanged.
  EXPECT_ERROR(e.forward(nn::Tensor({1, 2}, {3, 10})), "id (10) at flat index 1");
  EXPECT_ERROR(e.forward(nn::Tensor({1, 2}, {3, 10})), "[0, 10) (the row count)");
  EXPECT_ERROR(e.forward(nn::Tensor({1, 1}, {2.5f})), "id (2.5)");
  EXPECT_ERROR(pos.forward(nn::Tensor({1, 11})), "sequence length (11)");
  EXPECT_ERROR(e.quantize_rows(), "int8 already");
  nn::Embedding nan_row(2, 3);
  nan_row.weight.data[4] = std::nanf("");
  EXPECT_ERROR(nan_row.quantize_rows(), "weight[1][1] (nan) must be finite");
  EXPECT_FALSE(nan_row.int8_rows());  // unchanged
  nn::Embedding truncated = e;
  truncated.rows_int8.pop_back();
  EXPECT_ERROR(truncated.forward(nn::Tensor({1, 1})), "int8 rows (39 values, 10 scales)");
  // No FP32 parameter left to save or load.
  int params = 0;
  e.for_each_param([&](const std::string&, nn::Tensor&) { ++params; });
  EXPECT_EQ(params, 0);
}

// ---------------------------------------------------------------- in graphs
nn::Graph embedding_graph() {
  nn::Graph g({"ids"});
  g.add("table", nn::Embedding(1000, 64));
  g.add("norm", nn::LayerNorm(64));
  g.init_parameters(5);
  return g;
}

TEST(EmbeddingInt8, QuantizedGraphsStoreInt8RowsUnlessKeptFp32) {
  const nn::Graph g = embedding_graph();
  EXPECT_EQ(g.weight_bytes(), (1000 * 64 + 2 * 64) * sizeof(float));
  const nn::Tensor ids({2, 3}, {0, 999, 5, 17, 17, 3});

  const nn::QuantizedGraph q = nn::quantize_dynamic(g);
  // 1 byte per element and a 4-byte scale per row, instead of 4 bytes per element.
  EXPECT_EQ(q.weight_bytes(), 1000 * 64 + 1000 * sizeof(float) + 2 * 64 * sizeof(float));
  EXPECT_EQ(q.step_kinds().front(), "INT8 Embedding");
  EXPECT_NE(q.summary().find("INT8 Embedding(1000, 64, int8 rows)"), std::string::npos)
      << q.summary();
  // The graph's output is the int8 node's: the LayerNorm of the dequantized rows.
  nn::Embedding e = std::get<nn::Embedding>(g.node("table").op);
  e.quantize_rows();
  EXPECT_EQ(q.forward(ids).data, nn::LayerNorm(64).forward(e.forward(ids)).data);
  // The FP32 graph is not touched.
  EXPECT_FALSE(std::get<nn::Embedding>(g.node("table").op).int8_rows());

  // keep_fp32 on the node: FP32 rows, FP32 bytes, the FP32 graph's output.
  const nn::DynamicConfig keep{.overrides = {{"table", nn::LayerOverride{.keep_fp32 = true}}}};
  const nn::QuantizedGraph k = nn::quantize_dynamic(g, keep);
  EXPECT_EQ(k.weight_bytes(), g.weight_bytes());
  EXPECT_EQ(k.step_kinds().front(), "FP32 Embedding");
  EXPECT_EQ(k.forward(ids).data, g.forward(ids).data);

  // Static graphs do the same (nothing to calibrate: the rows' scales come
  // from the rows).
  nn::GraphCalibrator cal(g);
  cal.observe(ids);
  EXPECT_EQ(nn::quantize_static(cal).weight_bytes(), q.weight_bytes());
  EXPECT_EQ(nn::quantize_static(cal, {.overrides = keep.overrides}).weight_bytes(),
            g.weight_bytes());

  // An Embedding override takes no granularity (rows always have their own scale).
  const nn::LayerOverride per_tensor{.weight_granularity = Granularity::per_tensor};
  EXPECT_ERROR(nn::quantize_dynamic(g, {.overrides = {{"table", per_tensor}}}),
               "'table' names an Embedding and sets weight_granularity");
  EXPECT_ERROR(nn::quantize_dynamic(g, {.overrides = {{"norm", {.keep_fp32 = true}}}}),
               "'norm' names no Linear/Conv2d/Embedding node");
}

TEST(EmbeddingInt8, BertTinyQuantizedOutputCloseToFp32EmbeddingsOne) {
  const nn::BertConfig config = nn::bert_tiny_config();
  nn::Graph g = nn::bert(config);
  g.init_parameters(6);
  // 2 sequences of 24 tokens, the last 5 of each padded.
  const std::vector<nn::Tensor> in = test::bert_batch(2, 24, config.vocab_size, 5, 7);
  const nn::DynamicConfig per_token{.per_row_activations = true};
  nn::DynamicConfig keep = per_token;
  for (const char* table : {"word_embeddings", "position_embeddings", "token_type_embeddings"}) {
    keep.overrides[std::string("bert.embeddings.") + table] = {.keep_fp32 = true};
  }
  // The last hidden state ([B][S][128], unit scale after LayerNorm) says
  // more than 2 x 2 logits: make it the (first) output.
  g.set_outputs({g.outputs()[1]});
  const nn::QuantizedGraph q8 = nn::quantize_dynamic(g, per_token);
  const nn::QuantizedGraph q32 = nn::quantize_dynamic(g, keep);

  // Bytes: the three tables (30522 + 512 + 2 rows of 128) drop from 4 bytes
  // per element to 1, plus a 4-byte scale per row.
  const std::size_t rows = 30522 + 512 + 2;
  EXPECT_EQ(q32.weight_bytes() - q8.weight_bytes(), rows * 128 * 3 - rows * 4);

  const nn::Tensor fp32 = g.forward(in), out8 = q8.forward(in), out32 = q32.forward(in);
  // Each table's rows are N(0, 1) (torch's init): a row of 128 has
  // max|w| ~ 2.9, a step of ~2.9 / 127 = 0.023 and uniform rounding noise of
  // 0.023 / sqrt(12) = 0.0066 RMS, 43.6 dB below the row; the three tables'
  // noises add like their signals, so the embedding sum is ~43.6 dB clean,
  // and the embeddings' LayerNorm and every residual path carry that ratio to
  // the last hidden state. The encoder's INT8 Linears alone are less noisy
  // on this model (about 49 dB), so the tables set the INT8 graph's SQNR.
  // 38 dB leaves ~4 dB for the sample; a wrong row or scale gives < 10 dB.
  const double between = test::sqnr_db(out32, out8);
  const double fp32_vs_q32 = test::sqnr_db(fp32, out32);
  const double fp32_vs_q8 = test::sqnr_db(fp32, out8);
  std::printf(
      "bert-tiny last hidden state: int8 vs FP32 embeddings %.1f dB; FP32 graph vs INT8 graph "
      "%.1f dB (FP32 embeddings), %.1f dB (int8 embeddings)\n",
      between, fp32_vs_q32, fp32_vs_q8);
  EXPECT_GT(between, 38.0);
  EXPECT_GT(fp32_vs_q8, 38.0);
}

}  // namespace
}  // namespace sparq
