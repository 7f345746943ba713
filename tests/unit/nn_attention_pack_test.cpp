// The INT8 attention products pack k (per key row) and v (per head column)
// on every call into reused per-thread buffers (detail::pack_attention_head).
// The packed operand must be byte for byte what pack_weights makes of
// quantize_weights' values, on every ISA: panels (padding included), column
// sums, scales; also after a call of another shape reused the buffers, and
// a handle still held by a caller must never be overwritten.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "sparq/detail/packed_weights_data.hpp"
#include "sparq/gemm/packed_weights.hpp"
#include "sparq/nn/quantized.hpp"
#include "sparq/nn/transformer.hpp"
#include "support/isa_param.hpp"

namespace sparq {
namespace {

class AttentionPackTest : public testing::IsaTest {
 protected:
  std::mt19937 rng_{7};
};

// What the products did before the buffers were reused: gather, quantize
// per row, pack_weights.
PackedWeights expected(const std::vector<float>& src, int64_t rows, int64_t cols, int64_t ld,
                       bool transpose) {
  std::vector<float> dense(static_cast<std::size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      dense[static_cast<std::size_t>(transpose ? c * rows + r : r * cols + c)] =
          src[static_cast<std::size_t>(r * ld + c)];
    }
  }
  const int64_t n = transpose ? cols : rows, k = transpose ? rows : cols;
  const nn::QuantizedTensor q = nn::quantize_weights(dense, n, k, Granularity::per_channel);
  return pack_weights(q.values.data(), n, k, WeightLayout::out_in, 0, q.scales);
}

void expect_same(const PackedWeights& got, const PackedWeights& want, const char* what) {
  const detail::PackedWeightsData& g = got.data();
  const detail::PackedWeightsData& w = want.data();
  ASSERT_EQ(g.isa, w.isa) << what;
  ASSERT_EQ(g.nr, w.nr) << what;
  ASSERT_EQ(g.kr, w.kr) << what;
  ASSERT_EQ(g.n, w.n) << what;
  ASSERT_EQ(g.k, w.k) << what;
  ASSERT_EQ(g.kp, w.kp) << what;
  ASSERT_EQ(g.n_panels, w.n_panels) << what;
  ASSERT_EQ(g.panels.size(), w.panels.size()) << what;
  EXPECT_EQ(std::memcmp(g.panels.data(), w.panels.data(), w.panels.size()), 0) << what;
  EXPECT_EQ(g.col_sums, w.col_sums) << what;
  EXPECT_EQ(g.scales, w.scales) << what;
  EXPECT_EQ(g.per_channel, w.per_channel) << what;
}

TEST_P(AttentionPackTest, SameBytesAsPackWeightsAcrossReuses) {
  std::normal_distribution<float> normal(0.0f, 1.5f);
  // (rows, cols): sequence x head dim, ragged against every NR and KR; the
  // order makes each shape reuse (or replace) the previous one's buffers.
  const std::pair<int64_t, int64_t> shapes[] = {{37, 8}, {37, 8}, {5, 3},   {128, 64},
                                                {37, 8}, {1, 1},  {19, 67}, {37, 8}};
  for (const auto& [rows, cols] : shapes) {
    const int64_t ld = cols + 5;
    std::vector<float> src(static_cast<std::size_t>(rows * ld));
    for (float& v : src) v = normal(rng_);
    src[0] = 0.0f;  // exact zeros and a zero row among the random values
    for (int64_t c = 0; c < cols; ++c) src[static_cast<std::size_t>((rows - 1) * ld + c)] = 0.0f;
    for (bool transpose : {false, true}) {
      const PackedWeights got =
          detail::pack_attention_head(transpose ? 1 : 0, src.data(), rows, cols, ld, transpose);
      expect_same(got, expected(src, rows, cols, ld, transpose),
                  transpose ? "transposed (v)" : "rows (k)");
    }
  }
}

TEST_P(AttentionPackTest, HeldHandleIsNeverOverwritten) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> a(20 * 8), b(20 * 8);
  for (float& v : a) v = normal(rng_);
  for (float& v : b) v = normal(rng_);
  const PackedWeights held = detail::pack_attention_head(0, a.data(), 20, 8, 8, false);
  const PackedWeights next = detail::pack_attention_head(0, b.data(), 20, 8, 8, false);
  EXPECT_NE(&held.data(), &next.data());
  expect_same(held, expected(a, 20, 8, 8, false), "held");
  expect_same(next, expected(b, 20, 8, 8, false), "next");
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(AttentionPackTest);

}  // namespace
}  // namespace sparq
