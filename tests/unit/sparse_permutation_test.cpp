// Channel permutation search: bijection, never worse than the identity, a
// local optimum, and a permuted network computes the same function.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "sparq/sparse/permutation.hpp"
#include "unit/sparse_test_util.hpp"

namespace sparq {
namespace {

using testing::random_weights;

bool is_bijection(const std::vector<int64_t>& p, int64_t n) {
  std::vector<int64_t> s = p;
  std::sort(s.begin(), s.end());
  std::vector<int64_t> id(static_cast<std::size_t>(n));
  std::iota(id.begin(), id.end(), int64_t{0});
  return s == id;
}

TEST(SparsePermutation, BijectionAndNeverWorseThanIdentity) {
  uint32_t seed = 1;
  for (const NMPattern& p : {NMPattern{2, 4}, NMPattern{1, 4}, NMPattern{2, 8}, NMPattern{3, 8}}) {
    for (WeightLayout layout : {WeightLayout::out_in, WeightLayout::in_out}) {
      for (bool few : {false, true}) {
        SCOPED_TRACE(::testing::Message() << p.n << ":" << p.m << " few " << few);
        const WeightShape s{24, 4 * p.m, layout};
        const auto w = random_weights(s.size(), seed++, few);
        const PermutationResult r = search_permutation(w, s, {p});
        EXPECT_TRUE(is_bijection(r.permutation, s.inputs));
        EXPECT_GE(r.permuted_l1, r.identity_l1);
        EXPECT_LE(r.permuted_l1, r.total_l1);
        EXPECT_EQ(r.identity_l1, retained_l1(w, s, {p}));
        EXPECT_EQ(r.permuted_l1, retained_l1(w, s, {p}, r.permutation));
        // The permuted matrix, pruned without a permutation, keeps the same.
        const auto permuted = permute_inputs(w, s, r.permutation);
        EXPECT_EQ(retained_l1(permuted, s, {p}), r.permuted_l1);
        EXPECT_TRUE(r.converged);
        if (!few) {
          EXPECT_GT(r.permuted_l1, r.identity_l1);  // random normal weights: some swap helps
        }
      }
    }
  }
}

TEST(SparsePermutation, ResultIsALocalOptimumOfSingleSwaps) {
  // Brute force: no swap of two inputs in different groups improves the
  // retained L1 of the result by more than float noise.
  const WeightShape s{16, 16, WeightLayout::out_in};
  const auto w = random_weights(s.size(), 42);
  const PermutationResult r = search_permutation(w, s);
  ASSERT_TRUE(r.converged);
  for (int64_t a = 0; a < 16; ++a) {
    for (int64_t b = a + 1; b < 16; ++b) {
      if (a / 4 == b / 4) continue;
      auto q = r.permutation;
      std::swap(q[a], q[b]);
      // 1e-6 relative: the search's acceptance threshold is 1e-6 of the two
      // groups' retained L1, far below this matrix's total.
      EXPECT_LE(retained_l1(w, s, {}, q), r.permuted_l1 * (1 + 1e-6)) << a << " " << b;
    }
  }
}

TEST(SparsePermutation, FindsTheObviousInterleaving) {
  // Inputs 0-3 are large and 4-7 small in every row: 2:4 without a
  // permutation drops two large weights per row; the best permutation puts
  // two large and two small inputs in each group and keeps all large ones.
  const WeightShape s{4, 8, WeightLayout::out_in};
  std::vector<float> w(32);
  for (int64_t o = 0; o < 4; ++o)
    for (int64_t i = 0; i < 8; ++i) w[s.index(o, i)] = i < 4 ? 10.0f + i + o : 1.0f;
  const PermutationResult r = search_permutation(w, s);
  double large = 0;
  for (int64_t o = 0; o < 4; ++o)
    for (int64_t i = 0; i < 4; ++i) large += w[s.index(o, i)];
  EXPECT_EQ(r.permuted_l1, large);
  EXPECT_LT(r.identity_l1, large);
  EXPECT_GE(r.swaps, 1);
}

TEST(SparsePermutation, EqualMagnitudesKeepTheIdentity) {
  const WeightShape s{8, 16, WeightLayout::out_in};
  std::vector<float> w(s.size(), 1.0f);
  for (std::size_t e = 0; e < w.size(); e += 3) w[e] = -1.0f;
  const PermutationResult r = search_permutation(w, s);
  std::vector<int64_t> id(16);
  std::iota(id.begin(), id.end(), int64_t{0});
  EXPECT_EQ(r.permutation, id);
  EXPECT_EQ(r.swaps, 0);
  EXPECT_EQ(r.sweeps, 1);
  EXPECT_EQ(r.permuted_l1, r.identity_l1);
}

TEST(SparsePermutation, PaddedTailKeepsPaddingAtTheEnd) {
  const WeightShape s{12, 10, WeightLayout::in_out};
  const auto w = random_weights(s.size(), 5);
  EXPECT_THROW(search_permutation(w, s), Error);
  const PermutationResult r = search_permutation(w, s, {{2, 4}, TailPolicy::pad_zeros});
  EXPECT_TRUE(is_bijection(r.permutation, 10));
  EXPECT_GE(r.permuted_l1, r.identity_l1);
  EXPECT_EQ(r.permuted_l1, retained_l1(w, s, {{2, 4}, TailPolicy::pad_zeros}, r.permutation));
}

// A two-layer network h = relu(W1 x + b1), y = W2 h, computed in FP32 with
// the layouts given, and the bound of its last dot product's rounding.
struct Net {
  WeightShape s1, s2;
  std::vector<float> w1, b1, w2;
};

std::vector<float> forward(const Net& net, const std::vector<float>& x, std::vector<float>* bound) {
  std::vector<float> h(static_cast<std::size_t>(net.s1.outputs));
  for (int64_t j = 0; j < net.s1.outputs; ++j) {
    float acc = net.b1[j];
    for (int64_t i = 0; i < net.s1.inputs; ++i) acc += net.w1[net.s1.index(j, i)] * x[i];
    h[j] = std::max(acc, 0.0f);
  }
  std::vector<float> y(static_cast<std::size_t>(net.s2.outputs));
  if (bound) bound->assign(y.size(), 0.0f);
  for (int64_t o = 0; o < net.s2.outputs; ++o) {
    float acc = 0;
    for (int64_t j = 0; j < net.s2.inputs; ++j) {
      acc += net.w2[net.s2.index(o, j)] * h[j];
      if (bound) (*bound)[o] += std::fabs(net.w2[net.s2.index(o, j)] * h[j]);
    }
    y[o] = acc;
  }
  return y;
}

TEST(SparsePermutation, PermutedNetworkComputesTheSameFunction) {
  for (WeightLayout layout : {WeightLayout::out_in, WeightLayout::in_out}) {
    Net net{{32, 12, layout}, {8, 32, layout}, {}, {}, {}};
    net.w1 = random_weights(net.s1.size(), 1);
    net.b1 = random_weights(32, 2);
    net.w2 = random_weights(net.s2.size(), 3);
    const PermutationResult r = search_permutation(net.w2, net.s2);
    ASSERT_GT(r.swaps, 0);  // otherwise the test would compare a network with itself
    Net permuted = net;
    permuted.w2 = permute_inputs(net.w2, net.s2, r.permutation);
    permuted.w1 = permute_outputs(net.w1, net.s1, r.permutation);
    permuted.b1 = permute_vector(net.b1, r.permutation);
    for (uint32_t t = 0; t < 5; ++t) {
      const auto x = random_weights(12, 100 + t);
      std::vector<float> bound;
      const auto y = forward(net, x, &bound);
      const auto y2 = forward(permuted, x, nullptr);
      // The hidden activations are bitwise the same values (each is
      // computed by the same row in the same order, only stored elsewhere);
      // the last layer sums the same 32 products in another order. Each
      // order is within gamma_32 * sum|w*h| of the exact sum (recursive
      // summation, gamma_n = n*u / (1 - n*u), u = 2^-24), so the two differ by
      // at most twice that.
      const float u = std::numeric_limits<float>::epsilon() / 2;
      for (std::size_t o = 0; o < y.size(); ++o) {
        EXPECT_NEAR(y2[o], y[o], 2 * (32 * u / (1 - 32 * u)) * bound[o]) << o;
      }
    }
    // And the pruned permuted network: pruning the permuted W2 equals
    // pruning W2 with a mask laid out in the original input order.
    const auto pruned_perm = prune_nm(permuted.w2, net.s2);
    const auto back = permute_inputs(pruned_perm, net.s2, inverse_permutation(r.permutation));
    EXPECT_EQ(retained_l1(back, net.s2, {}, r.permutation), r.permuted_l1);
  }
}

TEST(SparsePermutation, BadInputThrows) {
  const WeightShape s{4, 8, WeightLayout::out_in};
  auto w = random_weights(s.size(), 9);
  EXPECT_THROW(check_permutation(std::vector<int64_t>{0, 1, 1}, 3, "t"), Error);
  EXPECT_THROW(check_permutation(std::vector<int64_t>{0, 1, 3}, 3, "t"), Error);
  EXPECT_THROW(check_permutation(std::vector<int64_t>{0, 1}, 3, "t"), Error);
  EXPECT_THROW(check_permutation(std::vector<int64_t>{0, -1, 2}, 3, "t"), Error);
  EXPECT_NO_THROW(check_permutation(std::vector<int64_t>{2, 0, 1}, 3, "t"));
  EXPECT_THROW(permute_inputs(w, s, std::vector<int64_t>{0, 1, 2, 3}), Error);
  EXPECT_THROW(permute_outputs(w, s, std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}), Error);
  EXPECT_THROW(retained_l1(w, s, {}, std::vector<int64_t>{0, 1}), Error);
  EXPECT_THROW(search_permutation(w, s, {{2, 4}, TailPolicy::refuse, 0}), Error);
  EXPECT_THROW(search_permutation(w, s, {{4, 4}}), Error);
  w[5] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(search_permutation(w, s), Error);
  EXPECT_THROW(retained_l1(w, s), Error);
}

TEST(SparsePermutation, InverseAndVectors) {
  const std::vector<int64_t> p = {2, 0, 3, 1};
  EXPECT_EQ(inverse_permutation(p), (std::vector<int64_t>{1, 3, 0, 2}));
  EXPECT_EQ(permute_vector(std::vector<float>{10, 11, 12, 13}, p),
            (std::vector<float>{12, 10, 13, 11}));
  const WeightShape s{2, 4, WeightLayout::out_in};
  const std::vector<int8_t> q = {1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(permute_inputs(q, s, p), (std::vector<int8_t>{3, 1, 4, 2, 7, 5, 8, 6}));
  const WeightShape t{4, 2, WeightLayout::in_out};  // element (o, i) at i*4 + o
  EXPECT_EQ(permute_outputs(q, t, p), (std::vector<int8_t>{3, 1, 4, 2, 7, 5, 8, 6}));
}

}  // namespace
}  // namespace sparq
