// Transformer operators (transformer.hpp) against direct FP64 formulas on
// random data, their argument checks, and attention with padding.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numbers>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "sparq/error.hpp"
#include "sparq/nn/transformer.hpp"
#include "sparq/threads.hpp"
#include "support/nn_random.hpp"

namespace nn = sparq::nn;

namespace {

constexpr double kUlp = 1.0 / (1 << 24);  // 2^-24, half a float ulp at 1

using sparq::test::random_tensor;

// Runs `f` and expects a sparq::Error whose message contains every piece.
template <class F>
void expect_error(F f, const std::vector<std::string>& pieces) {
  try {
    f();
    ADD_FAILURE() << "no sparq::Error thrown";
  } catch (const sparq::Error& e) {
    for (const auto& piece : pieces) {
      EXPECT_NE(std::string(e.what()).find(piece), std::string::npos)
          << "'" << piece << "' not in: " << e.what();
    }
  }
}

nn::Tensor attention(const nn::Attention& a, const std::vector<const nn::Tensor*>& inputs) {
  return a.forward(std::span<const nn::Tensor* const>(inputs.data(), inputs.size()));
}

// FP64 multi-head attention with Hugging Face's additive mask: a padded key
// gets weight exp(lowest) = 0, a row whose keys are all padding gets equal
// weights (every score is the same lowest float).
std::vector<double> attention_ref(const nn::Tensor& q, const nn::Tensor& k, const nn::Tensor& v,
                                  const nn::Tensor* mask, int64_t heads) {
  const int64_t batch = q.shape[0], sq = q.shape[1], hidden = q.shape[2], sk = k.shape[1];
  const int64_t d = hidden / heads;
  std::vector<double> out(static_cast<std::size_t>(batch * sq * hidden));
  for (int64_t b = 0; b < batch; ++b) {
    bool all_padded = mask != nullptr;
    for (int64_t j = 0; j < sk && mask != nullptr; ++j) all_padded &= mask->data[b * sk + j] == 0;
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < sq; ++i) {
        std::vector<double> p(static_cast<std::size_t>(sk));
        double max = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < sk; ++j) {
          double s = 0;
          for (int64_t c = 0; c < d; ++c) {
            s += double{q.data[(b * sq + i) * hidden + h * d + c]} *
                 k.data[(b * sk + j) * hidden + h * d + c];
          }
          s /= std::sqrt(static_cast<double>(d));
          const bool padded = mask != nullptr && mask->data[b * sk + j] == 0;
          if (all_padded)
            s = 0;  // every score equal: uniform weights
          else if (padded)
            s = -std::numeric_limits<double>::infinity();
          p[j] = s;
          max = std::max(max, s);
        }
        double sum = 0;
        for (double& x : p) sum += (x = std::exp(x - max));
        for (int64_t c = 0; c < d; ++c) {
          double acc = 0;
          for (int64_t j = 0; j < sk; ++j)
            acc += p[j] / sum * v.data[(b * sk + j) * hidden + h * d + c];
          out[(b * sq + i) * hidden + h * d + c] = acc;
        }
      }
    }
  }
  return out;
}

// Attention's error against FP64 for |q|, |k|, |v| <= 1 and d <= 16: each
// score sums d products in float, within (d + 1) 2^-24 d ~ 5e-6 before the
// 1/sqrt(d) scale; an absolute score error e changes the weights by a
// relative ~2e, and the output (a convex combination of |v| <= 1) by about
// 2e plus the second product's own (seq_k + 1) 2^-24 <= 1e-5 for seq_k < 128:
// 2e-5 bounds both with margin.
constexpr double kAttentionTol = 2e-5;

}  // namespace

// ---------------------------------------------------------------- Embedding
TEST(Embedding, LooksUpRowsPositionsAndAFixedRow) {
  std::mt19937 rng(1);
  nn::Embedding e(10, 6);
  e.weight = random_tensor({10, 6}, rng);
  const nn::Tensor ids({2, 3}, {3, 0, 9, 9, 9, 1});
  const nn::Tensor y = e.forward(ids);
  ASSERT_EQ(y.shape, (std::vector<int64_t>{2, 3, 6}));
  for (int64_t i = 0; i < 6; ++i) {
    const auto row = static_cast<int64_t>(ids.data[i]);
    for (int64_t c = 0; c < 6; ++c) EXPECT_EQ(y.data[i * 6 + c], e.weight.data[row * 6 + c]);
  }

  nn::Embedding pos(10, 6, /*positional=*/true);
  pos.weight = e.weight;
  const nn::Tensor yp = pos.forward(ids);  // the ids' values are ignored
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t s = 0; s < 3; ++s)
      for (int64_t c = 0; c < 6; ++c)
        EXPECT_EQ(yp.data[(b * 3 + s) * 6 + c], e.weight.data[s * 6 + c]);

  nn::Embedding fixed(10, 6, false, /*fixed_row=*/4);
  fixed.weight = e.weight;
  const nn::Tensor yf = fixed.forward(ids);
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t c = 0; c < 6; ++c) EXPECT_EQ(yf.data[i * 6 + c], e.weight.data[4 * 6 + c]);
  EXPECT_EQ(e.describe(), "Embedding(10, 6)");
  EXPECT_EQ(pos.describe(), "Embedding(10, 6, positional)");
  EXPECT_EQ(fixed.describe(), "Embedding(10, 6, row 4)");
}

TEST(Embedding, RejectsBadIdsAndArguments) {
  nn::Embedding e(10, 4);
  expect_error(
      [&] {
        e.forward(nn::Tensor({1, 2}, {3, 10}));
      },
      {"id (10)", "[0, 10)", "row count"});
  expect_error([&] { e.forward(nn::Tensor({1, 2}, {-1, 2})); }, {"id (-1)"});
  expect_error([&] { e.forward(nn::Tensor({1, 2}, {2.5f, 2})); }, {"id (2.5)", "integer"});
  expect_error([&] { e.forward(nn::Tensor({1, 1}, {std::nanf("")})); }, {"id (nan)"});
  expect_error([] { nn::Embedding(0, 4); }, {"num_embeddings (0)"});
  expect_error([] { nn::Embedding(4, 0); }, {"embedding_dim (0)"});
  expect_error([] { nn::Embedding(4, 2, false, 4); }, {"fixed_row (4)", "[0, 4)"});
  expect_error([] { nn::Embedding(4, 2, true, 1); }, {"positional", "fixed_row (1)"});
  nn::Embedding pos(4, 2, true);
  expect_error([&] { pos.forward(nn::Tensor({1, 5})); }, {"sequence length (5)", "(4)"});
  nn::Embedding wrong(4, 2);
  wrong.weight = nn::Tensor({3, 2});
  expect_error([&] { wrong.forward(nn::Tensor({1, 1})); }, {"weight shape [3, 2]", "[4, 2]"});
}

// ---------------------------------------------------------------- LayerNorm
TEST(LayerNorm, MatchesTheFp64Formula) {
  std::mt19937 rng(2);
  nn::LayerNorm ln(48, 1e-12f);
  ln.weight = random_tensor({48}, rng, 0.5f, 2.0f);
  ln.bias = random_tensor({48}, rng);
  // Rows far from zero: a one-pass float variance would cancel here.
  const nn::Tensor x = random_tensor({3, 5, 48}, rng, 99.0f, 101.0f);
  const nn::Tensor y = ln.forward(x);
  ASSERT_EQ(y.shape, x.shape);
  for (int64_t r = 0; r < 15; ++r) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < 48; ++j) mean += x.data[r * 48 + j];
    mean /= 48;
    for (int64_t j = 0; j < 48; ++j) var += std::pow(x.data[r * 48 + j] - mean, 2);
    var /= 48;
    for (int64_t j = 0; j < 48; ++j) {
      const double ref = (x.data[r * 48 + j] - mean) / std::sqrt(var + 1e-12) * ln.weight.data[j] +
                         ln.bias.data[j];
      // Computed in double and rounded once to float: half an ulp of the result
      // (2^-24 relative), doubled for the double-precision sums.
      EXPECT_NEAR(y.data[r * 48 + j], ref, 2 * kUlp * std::fabs(ref) + 1e-12) << r << "," << j;
    }
  }
  EXPECT_EQ(ln.describe(), "LayerNorm(48, eps=1e-12)");
}

TEST(LayerNorm, RejectsBadShapes) {
  nn::LayerNorm ln(8);
  expect_error([&] { ln.forward(nn::Tensor({2, 7})); }, {"[2, 7]", "normalized_shape = 8"});
  expect_error([] { nn::LayerNorm(0); }, {"normalized_shape (0)"});
  expect_error([] { nn::LayerNorm(4, 0.0f); }, {"eps (0)"});
  ln.bias = nn::Tensor({3});
  expect_error([&] { ln.forward(nn::Tensor({1, 8})); }, {"bias (3)"});
}

// -------------------------------------------------------------- activations
TEST(Gelu, ErfAndTanhFormsMatchPyTorchsFormulas) {
  std::mt19937 rng(3);
  const nn::Tensor x = random_tensor({4, 257}, rng, -6.0f, 6.0f);
  nn::GELU exact;
  nn::GELU approx;
  approx.tanh_approximation = true;
  const nn::Tensor ye = exact.forward(x), ya = approx.forward(x);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double v = x.data[i];
    const double ref_erf = 0.5 * v * (1 + std::erf(v / std::numbers::sqrt2));
    const double ref_tanh =
        0.5 * v * (1 + std::tanh(std::sqrt(2 / std::numbers::pi) * (v + 0.044715 * v * v * v)));
    // Float erf/tanh of an argument rounded to float, and 1 + erf rounded near
    // 1 (cancelling for negative x): a few 2^-24 units of |x| plus of |y|.
    EXPECT_NEAR(ye.data[i], ref_erf, 8 * kUlp * (std::fabs(v) + std::fabs(ref_erf))) << v;
    EXPECT_NEAR(ya.data[i], ref_tanh, 8 * kUlp * (std::fabs(v) + std::fabs(ref_tanh))) << v;
  }
  EXPECT_EQ(exact.describe(), "GELU");
  EXPECT_EQ(approx.describe(), "GELU(tanh)");
  // The two forms differ (by up to ~5e-4 near |x| = 2): the flag is honoured.
  EXPECT_NE(ye.data, ya.data);
}

TEST(Softmax, MatchesFp64AndSumsToOne) {
  std::mt19937 rng(4);
  const nn::Tensor x = random_tensor({3, 4, 33}, rng, -10.0f, 10.0f);
  const nn::Tensor y = nn::Softmax().forward(x);
  for (int64_t r = 0; r < 12; ++r) {
    double max = -1e300, sum = 0, total = 0;
    for (int64_t j = 0; j < 33; ++j) max = std::max(max, double{x.data[r * 33 + j]});
    for (int64_t j = 0; j < 33; ++j) sum += std::exp(x.data[r * 33 + j] - max);
    for (int64_t j = 0; j < 33; ++j) {
      const double ref = std::exp(x.data[r * 33 + j] - max) / sum;
      // x - max (|.| < 20) rounded to float moves exp's argument by up to half
      // an ulp of 20 (9.5e-7): that relative error, plus a few ulps of exp,
      // the reciprocal and the product.
      EXPECT_NEAR(y.data[r * 33 + j], ref, 2e-6 * ref) << r << "," << j;
      total += y.data[r * 33 + j];
    }
    EXPECT_NEAR(total, 1.0, 33 * 2e-6);
  }
  // Max-subtracted: huge logits do not overflow.
  const nn::Tensor big = nn::Softmax().forward(nn::Tensor({1, 2}, {1000.0f, 1000.0f}));
  EXPECT_EQ(big.data, (std::vector<float>{0.5f, 0.5f}));
  expect_error([] { nn::Softmax().forward(nn::Tensor({2, 0})); }, {"[2, 0]"});
}

TEST(Tanh, MatchesFp64) {
  std::mt19937 rng(5);
  const nn::Tensor x = random_tensor({100}, rng, -5.0f, 5.0f);
  const nn::Tensor y = nn::Tanh().forward(x);
  for (int64_t i = 0; i < 100; ++i) {
    // libm's float tanh is within a couple of ulps.
    EXPECT_NEAR(y.data[i], std::tanh(double{x.data[i]}),
                4 * kUlp * std::fabs(std::tanh(x.data[i])));
  }
}

// -------------------------------------------------------------- SelectIndex
TEST(SelectIndex, DropsTheAxisAndCountsFromTheEnd) {
  std::mt19937 rng(6);
  const nn::Tensor x = random_tensor({2, 5, 3}, rng);
  nn::SelectIndex first;  // axis 1, index 0: BERT's [CLS] token
  const nn::Tensor y = first.forward(x);
  ASSERT_EQ(y.shape, (std::vector<int64_t>{2, 3}));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(y.data[b * 3 + c], x.data[(b * 5) * 3 + c]);
  nn::SelectIndex last;
  last.axis = -1;
  last.index = -1;
  const nn::Tensor z = last.forward(x);
  ASSERT_EQ(z.shape, (std::vector<int64_t>{2, 5}));
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(z.data[i], x.data[i * 3 + 2]);
  EXPECT_EQ(first.describe(), "SelectIndex(axis 1, index 0)");

  nn::SelectIndex bad;
  bad.index = 5;
  expect_error([&] { bad.forward(x); }, {"index (5)", "[-5, 5)"});
  bad.index = 0;
  bad.axis = 3;
  expect_error([&] { bad.forward(x); }, {"axis (3)", "[2, 5, 3]"});
}

// ------------------------------------------------------------ Reshape, Mean
TEST(Reshape, KeepsTheBatchAndTheDataAndInfersOneAxis) {
  std::mt19937 rng(10);
  const nn::Tensor x = random_tensor({2, 4, 4, 6}, rng);  // NHWC patch embedding
  nn::Reshape tokens;
  tokens.shape = {16, 6};
  const nn::Tensor y = tokens.forward(x);
  EXPECT_EQ(y.shape, (std::vector<int64_t>{2, 16, 6}));
  EXPECT_EQ(y.data, x.data);
  tokens.shape = {-1, 6};
  EXPECT_EQ(tokens.forward(x).shape, (std::vector<int64_t>{2, 16, 6}));
  EXPECT_EQ(tokens.describe(), "Reshape(batch, -1, 6)");
  tokens.shape = {-1, 5};
  expect_error([&] { tokens.forward(x); }, {"[2, 4, 4, 6]", "96 elements", "[-1, 5]"});
  tokens.shape = {-1, -1};
  expect_error([&] { tokens.forward(x); }, {"entry 1 (-1)"});
}

TEST(Mean, MatchesFp64AndDropsTheAxis) {
  std::mt19937 rng(11);
  const nn::Tensor x = random_tensor({3, 16, 5}, rng, -4.0f, 4.0f);
  nn::Mean pool;  // axis 1: mean over tokens
  const nn::Tensor y = pool.forward(x);
  ASSERT_EQ(y.shape, (std::vector<int64_t>{3, 5}));
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t c = 0; c < 5; ++c) {
      double sum = 0;
      for (int64_t s = 0; s < 16; ++s) sum += x.data[(b * 16 + s) * 5 + c];
      // Summed in double, rounded once to float.
      EXPECT_NEAR(y.data[b * 5 + c], sum / 16, kUlp * std::fabs(sum / 16) + 1e-12);
    }
  pool.axis = -1;
  EXPECT_EQ(pool.forward(x).shape, (std::vector<int64_t>{3, 16}));
  EXPECT_EQ(pool.describe(), "Mean(axis -1)");
  pool.axis = 3;
  expect_error([&] { pool.forward(x); }, {"Mean: axis (3)", "[-3, 3)"});
  pool.axis = 1;
  expect_error([&] { pool.forward(nn::Tensor({2, 0, 3})); }, {"axis 1", "empty"});
}

// ---------------------------------------------------------------- Attention
TEST(Attention, MatchesFp64WithAndWithoutMask) {
  std::mt19937 rng(7);
  for (const auto& [batch, seq_q, seq_k, hidden, heads] : std::vector<std::array<int64_t, 5>>{
           {2, 7, 7, 24, 3}, {1, 5, 9, 16, 1}, {2, 40, 40, 64, 4}}) {
    const nn::Tensor q = random_tensor({batch, seq_q, hidden}, rng);
    const nn::Tensor k = random_tensor({batch, seq_k, hidden}, rng);
    const nn::Tensor v = random_tensor({batch, seq_k, hidden}, rng);
    nn::Tensor mask({batch, seq_k});
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t j = 0; j < seq_k; ++j)
        mask.data[b * seq_k + j] = j < seq_k - 2 * b ? 1.0f : 0.0f;
    const nn::Attention a(heads);
    const nn::Tensor plain = attention(a, {&q, &k, &v});
    const nn::Tensor masked = attention(a, {&q, &k, &v, &mask});
    ASSERT_EQ(plain.shape, (std::vector<int64_t>{batch, seq_q, hidden}));
    const auto ref_plain = attention_ref(q, k, v, nullptr, heads);
    const auto ref_masked = attention_ref(q, k, v, &mask, heads);
    for (std::size_t i = 0; i < ref_plain.size(); ++i) {
      EXPECT_NEAR(plain.data[i], ref_plain[i], kAttentionTol) << i;
      EXPECT_NEAR(masked.data[i], ref_masked[i], kAttentionTol) << i;
    }
  }
}

TEST(Attention, PaddedKeysHaveNoEffectAndAFullyPaddedRowIsFinite) {
  std::mt19937 rng(8);
  const int64_t batch = 2, seq = 6, hidden = 8;
  nn::Tensor q = random_tensor({batch, seq, hidden}, rng);
  nn::Tensor k = random_tensor({batch, seq, hidden}, rng);
  nn::Tensor v = random_tensor({batch, seq, hidden}, rng);
  // Sequence 0: last two tokens padded; sequence 1: every token padded.
  nn::Tensor mask({batch, seq}, {1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0});
  const nn::Attention a(2);
  const nn::Tensor y = attention(a, {&q, &k, &v, &mask});
  for (float x : y.data) EXPECT_TRUE(std::isfinite(x));
  // Fully padded: equal weights, every query gets the mean of v per column.
  for (int64_t i = 0; i < seq; ++i)
    for (int64_t c = 0; c < hidden; ++c) {
      double mean = 0;
      for (int64_t j = 0; j < seq; ++j) mean += v.data[(seq + j) * hidden + c];
      // Weights are exactly 1/6 in float; the product sums 6 terms.
      EXPECT_NEAR(y.data[(seq + i) * hidden + c], mean / seq, 8 * kUlp) << i << "," << c;
    }
  // New keys and values at sequence 0's padded positions: weight exactly 0,
  // so its outputs are bit-identical.
  for (int64_t j = 4; j < 6; ++j)
    for (int64_t c = 0; c < hidden; ++c) {
      k.data[j * hidden + c] = 50.0f;
      v.data[j * hidden + c] = -70.0f;
    }
  const nn::Tensor y2 = attention(a, {&q, &k, &v, &mask});
  for (int64_t i = 0; i < seq * hidden; ++i) EXPECT_EQ(y2.data[i], y.data[i]) << i;
}

TEST(Attention, SameResultForEveryThreadCount) {
  std::mt19937 rng(9);
  const nn::Tensor q = random_tensor({2, 64, 32}, rng);
  const nn::Tensor k = random_tensor({2, 64, 32}, rng);
  const nn::Tensor v = random_tensor({2, 64, 32}, rng);
  const nn::Attention a(4);
  const int saved = sparq::num_threads();
  sparq::set_num_threads(1);
  const nn::Tensor one = attention(a, {&q, &k, &v});
  sparq::set_num_threads(2);
  const nn::Tensor two = attention(a, {&q, &k, &v});
  sparq::set_num_threads(saved);
  EXPECT_EQ(one.data, two.data);  // docs/design.md rule 9: split over outputs only
}

TEST(Attention, RejectsBadInputs) {
  const nn::Tensor q({2, 4, 8}), k({2, 4, 8}), v({2, 4, 8}), k5({2, 5, 8});
  const nn::Attention a(2);
  expect_error([&] { attention(a, {&q, &k}); }, {"inputs (2)", "3 (q, k, v)"});
  expect_error([&] { attention(nn::Attention(3), {&q, &k, &v}); }, {"heads (3)", "hidden (8)"});
  expect_error([&] { attention(a, {&q, &k5, &v}); }, {"v shape [2, 4, 8]", "k shape [2, 5, 8]"});
  const nn::Tensor k_batch({1, 4, 8});
  expect_error([&] { attention(a, {&q, &k_batch, &k_batch}); }, {"k shape [1, 4, 8]"});
  const nn::Tensor q2({2, 8});
  expect_error([&] { attention(a, {&q2, &k, &v}); }, {"q shape [2, 8]"});
  const nn::Tensor mask({2, 3});
  expect_error([&] { attention(a, {&q, &k, &v, &mask}); }, {"mask shape [2, 3]", "[2][4]"});
  const nn::Tensor half({2, 4}, {1, 1, 0.5f, 0, 1, 1, 1, 1});
  expect_error([&] { attention(a, {&q, &k, &v, &half}); }, {"mask value (0.5)", "flat index 2"});
  expect_error([] { nn::Attention(0); }, {"heads (0)"});
}
