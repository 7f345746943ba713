// Sparsity statistics against hand-computed and independently computed values.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "sparq/sparse/permutation.hpp"
#include "sparq/sparse/stats.hpp"
#include "unit/sparse_test_util.hpp"

namespace sparq {
namespace {

TEST(SparseStats, HandExample) {
  const WeightShape s{2, 4, WeightLayout::out_in};
  const std::vector<float> w = {3, -4, 1, 0, 0, 0, 0, 2};
  const SparsityStats st = sparsity_stats(w, nm_mask(w, s));
  // Kept: 3, -4 | 0 (index 0, tie with zeros), 2. Non-zeros: 3.
  EXPECT_EQ(st.elements, 8);
  EXPECT_EQ(st.nonzeros, 3);
  EXPECT_DOUBLE_EQ(st.sparsity, 5.0 / 8);
  EXPECT_DOUBLE_EQ(st.total_l1, 10);
  EXPECT_DOUBLE_EQ(st.retained_l1, 9);
  EXPECT_DOUBLE_EQ(st.retained_l1_fraction, 0.9);
  EXPECT_DOUBLE_EQ(st.retained_l2_fraction, std::sqrt(29.0 / 30.0));
  EXPECT_EQ(st.groups, 2);
  EXPECT_EQ(st.groups_below_n, 1);  // the second row keeps one non-zero
  EXPECT_EQ(st.groups_above_n, 0);
}

TEST(SparseStats, RandomTwoFourAgreesWithRetainedL1) {
  for (WeightLayout layout : {WeightLayout::out_in, WeightLayout::in_out}) {
    const WeightShape s{16, 32, layout};
    const auto w = testing::random_weights(s.size(), 3);
    const auto pruned = prune_nm(w, s);
    const SparsityStats st = sparsity_stats(w, pruned, s);
    EXPECT_DOUBLE_EQ(st.sparsity, 0.5);
    EXPECT_EQ(st.groups, 16 * 8);
    EXPECT_EQ(st.groups_below_n, 0);
    EXPECT_EQ(st.groups_above_n, 0);
    // Same sums, different association order: a few ulps of a double.
    EXPECT_NEAR(st.retained_l1, retained_l1(w, s), 1e-12 * st.retained_l1);
    EXPECT_GT(st.retained_l1_fraction, 0.5);  // the larger half is kept
    EXPECT_LT(st.retained_l1_fraction, 1.0);
    EXPECT_GT(st.retained_l2_fraction, st.retained_l1_fraction);  // energy sits in large weights
    // The dense matrix violates 2:4 in every group.
    EXPECT_EQ(sparsity_stats(w, w, s).groups_above_n, st.groups);
    EXPECT_DOUBLE_EQ(sparsity_stats(w, w, s).retained_l1_fraction, 1.0);
  }
}

TEST(SparseStats, PaddedTailAndZeros) {
  const WeightShape s{1, 6, WeightLayout::out_in};
  const std::vector<float> zeros(6, 0.0f);
  EXPECT_THROW(sparsity_stats(zeros, zeros, s), Error);
  const SparsityStats st = sparsity_stats(zeros, zeros, s, {{2, 4}, TailPolicy::pad_zeros});
  EXPECT_EQ(st.groups, 2);
  EXPECT_EQ(st.groups_below_n, 2);
  EXPECT_EQ(st.retained_l1_fraction, 1.0);  // nothing to lose
  EXPECT_EQ(st.retained_l2_fraction, 1.0);
  const std::vector<float> w = {1, 1, 0, 0, 5, 0};
  // Partial group {5, 0}: one non-zero of min(N, r) = 2 -> below N.
  EXPECT_EQ(sparsity_stats(w, w, s, {{2, 4}, TailPolicy::pad_zeros}).groups_below_n, 1);
  EXPECT_EQ(sparsity_stats(w, w, s, {{1, 4}, TailPolicy::pad_zeros}).groups_above_n, 1);
}

TEST(SparseStats, BadInputThrows) {
  const WeightShape s{2, 4, WeightLayout::out_in};
  std::vector<float> w(8, 1.0f), p(8, 0.0f);
  EXPECT_THROW(sparsity_stats(w, std::vector<float>(7), s), Error);
  EXPECT_THROW(sparsity_stats(w, p, s, {{4, 4}}), Error);
  p[2] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(sparsity_stats(w, p, s), Error);
  EXPECT_THROW(sparsity_stats(p, w, s), Error);
}

}  // namespace
}  // namespace sparq
