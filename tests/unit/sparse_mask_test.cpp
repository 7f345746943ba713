// N:M magnitude masks and the transposable 2:4 mask, checked against
// brute-force references.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>

#include "sparq/sparse/mask.hpp"
#include "unit/sparse_test_util.hpp"

namespace sparq {
namespace {

using testing::kPatterns;
using testing::random_weights;
using testing::transpose_layout;

// Reference: order the group's real elements by (|w| descending, index
// ascending) and keep the first N. Independent of the library's rank code.
std::vector<uint8_t> reference_mask(const std::vector<float>& w, const WeightShape& s,
                                    const NMPattern& p) {
  std::vector<uint8_t> keep(w.size(), 0);
  for (int64_t o = 0; o < s.outputs; ++o) {
    for (int64_t g = 0; g * p.m < s.inputs; ++g) {
      std::vector<int64_t> idx;
      for (int64_t i = g * p.m; i < std::min(s.inputs, g * p.m + p.m); ++i) idx.push_back(i);
      std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) {
        return std::fabs(w[s.index(o, a)]) > std::fabs(w[s.index(o, b)]);
      });
      for (std::size_t j = 0; j < idx.size() && j < static_cast<std::size_t>(p.n); ++j) {
        keep[s.index(o, idx[j])] = 1;
      }
    }
  }
  return keep;
}

// Largest kept sum of |w| over all subsets of exactly min(N, r) elements of
// a group (exhaustive: 2^M subsets), to check optimality without ordering.
double best_subset_sum(const std::vector<float>& a, int n) {
  const int r = static_cast<int>(a.size());
  const int want = std::min(n, r);
  double best = -1;
  for (unsigned sub = 0; sub < (1u << r); ++sub) {
    if (std::popcount(sub) != want) continue;
    double sum = 0;
    for (int j = 0; j < r; ++j)
      if (sub >> j & 1u) sum += std::fabs(a[j]);
    best = std::max(best, sum);
  }
  return best;
}

TEST(SparseMask, EveryGroupKeepsTheTopNMagnitudes) {
  uint32_t seed = 1;
  for (const NMPattern& p : kPatterns) {
    for (WeightLayout layout : {WeightLayout::out_in, WeightLayout::in_out}) {
      for (bool few : {false, true}) {
        const WeightShape s{7, 3 * p.m, layout};
        const auto w = random_weights(s.size(), seed++, few);
        const SparseMask mask = nm_mask(w, s, {p});
        SCOPED_TRACE(::testing::Message() << p.n << ":" << p.m << " layout "
                                          << static_cast<int>(layout) << " few " << few);
        EXPECT_EQ(mask.keep, reference_mask(w, s, p));
        EXPECT_TRUE(mask.satisfies_pattern());
        EXPECT_EQ(mask.kept_count(), s.outputs * 3 * p.n);  // exactly N per full group
        for (int64_t o = 0; o < s.outputs; ++o) {
          for (int64_t g = 0; g < 3; ++g) {
            std::vector<float> group;
            double kept = 0;
            int count = 0;
            for (int64_t i = g * p.m; i < g * p.m + p.m; ++i) {
              group.push_back(w[s.index(o, i)]);
              if (mask.kept(o, i)) {
                kept += std::fabs(w[s.index(o, i)]);
                ++count;
              }
            }
            ASSERT_EQ(count, p.n);
            if (p.m <= 8) {
              ASSERT_EQ(kept, best_subset_sum(group, p.n));
            }
          }
        }
      }
    }
  }
}

TEST(SparseMask, TiesGoToTheLowerIndex) {
  const WeightShape s{4, 4, WeightLayout::out_in};
  const std::vector<float> w = {1,     1,    1,     1,      //
                                -0.0f, 0.0f, 0,     -0.0f,  //
                                2,     -2,   2,     1,      //
                                0.5f,  3,    -0.5f, 0.5f};
  const SparseMask mask = nm_mask(w, s);
  const std::vector<uint8_t> expected = {1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0};
  EXPECT_EQ(mask.keep, expected);
  // The other layout of the same matrix gives the same decisions.
  const WeightShape t{4, 4, WeightLayout::in_out};
  EXPECT_EQ(nm_mask(transpose_layout(w, s), t).keep, transpose_layout(expected, s));
}

TEST(SparseMask, LayoutsAgree) {
  for (const NMPattern& p : kPatterns) {
    const WeightShape s{5, 2 * p.m + 1, WeightLayout::out_in};
    const auto w = random_weights(s.size(), 77, true);
    const PruneOptions opt{p, TailPolicy::pad_zeros};
    const SparseMask a = nm_mask(w, s, opt);
    const SparseMask b =
        nm_mask(transpose_layout(w, s), {5, 2 * p.m + 1, WeightLayout::in_out}, opt);
    EXPECT_EQ(transpose_layout(a.keep, s), b.keep);
  }
}

TEST(SparseMask, TailIsRefusedOrPadded) {
  const WeightShape s{3, 10, WeightLayout::out_in};
  const auto w = random_weights(s.size(), 5);
  EXPECT_THROW(nm_mask(w, s), Error);
  for (const NMPattern& p : {NMPattern{2, 4}, NMPattern{3, 4}, NMPattern{1, 4}}) {
    const SparseMask mask = nm_mask(w, s, {p, TailPolicy::pad_zeros});
    EXPECT_EQ(mask.keep, reference_mask(w, s, p));
    for (int64_t o = 0; o < 3; ++o) {  // partial group: inputs 8, 9
      EXPECT_EQ(mask.kept(o, 8) + mask.kept(o, 9), std::min(p.n, 2));
    }
  }
}

TEST(SparseMask, BadInputThrows) {
  const WeightShape s{2, 8, WeightLayout::out_in};
  auto w = random_weights(s.size(), 9);
  EXPECT_THROW(nm_mask(w, s, {{4, 4}}), Error);                          // N == M
  EXPECT_THROW(nm_mask(w, s, {{5, 4}}), Error);                          // N > M
  EXPECT_THROW(nm_mask(w, s, {{0, 4}}), Error);                          // N < 1
  EXPECT_THROW(nm_mask(w, s, {{2, 32}, TailPolicy::pad_zeros}), Error);  // M > 16
  EXPECT_THROW(nm_mask(w, {3, 8}, {}), Error);                           // size mismatch
  EXPECT_THROW(nm_mask(w, {0, 8}, {}), Error);                           // empty
  w[11] = std::numeric_limits<float>::quiet_NaN();
  try {
    nm_mask(w, s);
    ADD_FAILURE() << "NaN accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("output 1, input 3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(prune_nm(w, s), Error);
  EXPECT_THROW(transposable_mask(w, s), Error);
  w[11] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(nm_mask(w, s), Error);
  w[11] = 0;
  try {
    nm_mask(w, s, {{4, 4}});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("n (4)"), std::string::npos) << e.what();
  }
}

TEST(SparseMask, ApplyAndPrune) {
  const WeightShape s{6, 16, WeightLayout::in_out};
  const auto w = random_weights(s.size(), 11);
  const SparseMask mask = nm_mask(w, s);
  const auto pruned = prune_nm(w, s);
  for (std::size_t e = 0; e < w.size(); ++e) EXPECT_EQ(pruned[e], mask.keep[e] ? w[e] : 0.0f);
  std::vector<int8_t> q(w.size(), 3);
  mask.apply(std::span<int8_t>(q));
  for (std::size_t e = 0; e < w.size(); ++e) EXPECT_EQ(q[e], mask.keep[e] ? 3 : 0);
  std::vector<float> small(5);
  EXPECT_THROW(mask.apply(std::span<float>(small)), Error);
}

// All 4x4 0/1 blocks with two per row and column, by brute force.
std::vector<unsigned> valid_blocks() {
  std::vector<unsigned> out;
  for (unsigned b = 0; b < (1u << 16); ++b) {
    bool ok = true;
    for (int r = 0; r < 4; ++r) ok &= std::popcount((b >> (4 * r)) & 0xFu) == 2;
    for (int c = 0; c < 4; ++c) ok &= std::popcount(b & (0x1111u << c)) == 2;
    if (ok) out.push_back(b);
  }
  return out;
}

TEST(TransposableMask, ValidBothWaysAndOptimalPerBlock) {
  const auto blocks = valid_blocks();
  ASSERT_EQ(blocks.size(), 90u);
  uint32_t seed = 100;
  for (WeightLayout layout : {WeightLayout::out_in, WeightLayout::in_out}) {
    for (bool few : {false, true}) {
      const WeightShape s{8, 12, layout};
      const auto w = random_weights(s.size(), seed++, few);
      const SparseMask mask = transposable_mask(w, s);
      EXPECT_EQ(mask.pattern, (NMPattern{2, 4}));
      EXPECT_TRUE(mask.satisfies_pattern());
      EXPECT_TRUE(satisfies_pattern_transposed(mask));
      EXPECT_EQ(mask.kept_count(), s.size() / 2);
      for (int64_t ob = 0; ob < 8; ob += 4) {
        for (int64_t ib = 0; ib < 12; ib += 4) {
          float best = -1, got = 0;
          for (unsigned b : blocks) {
            float sum = 0;  // same summation order as below: exact compare
            for (int e = 0; e < 16; ++e)
              if (b >> e & 1u) sum += std::fabs(w[s.index(ob + e / 4, ib + e % 4)]);
            best = std::max(best, sum);
          }
          unsigned chosen = 0;
          for (int e = 0; e < 16; ++e)
            if (mask.kept(ob + e / 4, ib + e % 4)) chosen |= 1u << e;
          for (int e = 0; e < 16; ++e)
            if (chosen >> e & 1u) got += std::fabs(w[s.index(ob + e / 4, ib + e % 4)]);
          // Float sums in different association orders may differ by a few
          // ulps; 1e-5 relative is far below the gap between distinct
          // patterns of normal(0,1) or small-integer weights.
          EXPECT_NEAR(got, best, 1e-5f * best);
          EXPECT_NE(std::find(blocks.begin(), blocks.end(), chosen), blocks.end());
        }
      }
    }
  }
}

TEST(TransposableMask, TiesTakeTheFirstPattern) {
  // All-equal block: the first pattern in the documented order wins, i.e.
  // rows keep (0,1) (0,1) (2,3) (2,3).
  const WeightShape s{4, 4, WeightLayout::out_in};
  const std::vector<float> w(16, 1.0f);
  const std::vector<uint8_t> expected = {1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1};
  EXPECT_EQ(transposable_mask(w, s).keep, expected);
}

TEST(TransposableMask, TailPolicy) {
  const WeightShape s{6, 7, WeightLayout::out_in};
  const auto w = random_weights(s.size(), 21);
  EXPECT_THROW(transposable_mask(w, s), Error);
  EXPECT_THROW(transposable_mask(random_weights(6 * 8, 1), {6, 8}), Error);  // outputs % 4
  const SparseMask mask = transposable_mask(w, s, TailPolicy::pad_zeros);
  EXPECT_TRUE(mask.satisfies_pattern());
  EXPECT_TRUE(satisfies_pattern_transposed(mask));
  // Full rows of full blocks still keep exactly two per group.
  for (int64_t o = 0; o < 4; ++o) {
    EXPECT_EQ(mask.kept(o, 0) + mask.kept(o, 1) + mask.kept(o, 2) + mask.kept(o, 3), 2);
  }
}

TEST(SparseMask, SatisfiesPatternDetectsViolations) {
  const WeightShape s{2, 8, WeightLayout::out_in};
  SparseMask mask = nm_mask(random_weights(s.size(), 3), s);
  ASSERT_TRUE(mask.satisfies_pattern());
  mask.keep.assign(mask.keep.size(), 0);
  mask.keep[s.index(1, 4)] = mask.keep[s.index(1, 5)] = mask.keep[s.index(1, 7)] = 1;
  EXPECT_FALSE(mask.satisfies_pattern());
  const WeightShape t{8, 2, WeightLayout::out_in};
  SparseMask tm{t, {2, 4}, std::vector<uint8_t>(16, 0)};
  tm.keep[t.index(0, 1)] = tm.keep[t.index(2, 1)] = tm.keep[t.index(3, 1)] = 1;
  EXPECT_TRUE(tm.satisfies_pattern());
  EXPECT_FALSE(satisfies_pattern_transposed(tm));
}

}  // namespace
}  // namespace sparq
