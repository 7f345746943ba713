// The compressed N:M format: exact round trips, the documented byte layout,
// and its checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "sparq/sparse/compressed.hpp"
#include "unit/sparse_test_util.hpp"

namespace sparq {
namespace {

using testing::kPatterns;
using testing::random_weights;
using testing::transpose_layout;

template <class T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

TEST(SparseCompressed, RoundTripsExactlyForEveryPatternLayoutAndTail) {
  uint32_t seed = 1;
  for (const NMPattern& p : kPatterns) {
    for (WeightLayout layout : {WeightLayout::out_in, WeightLayout::in_out}) {
      for (int64_t k : {int64_t{3} * p.m, int64_t{3} * p.m + 1, int64_t{2} * p.m - 1}) {
        for (bool few : {false, true}) {
          SCOPED_TRACE(::testing::Message() << p.n << ":" << p.m << " k=" << k << " layout "
                                            << static_cast<int>(layout) << " few " << few);
          const WeightShape s{5, k, layout};
          const PruneOptions opt{p, TailPolicy::pad_zeros};
          const auto w = random_weights(s.size(), seed++, few);
          const auto pruned = prune_nm(w, s, opt);
          const CompressedNM<float> c = compress(pruned, s, opt);
          EXPECT_EQ(c.values.size(), static_cast<std::size_t>(5 * ((k + p.m - 1) / p.m) * p.n));
          EXPECT_TRUE(bitwise_equal(decompress(c, layout), pruned));
          EXPECT_TRUE(
              bitwise_equal(decompress(c, s.layout == WeightLayout::out_in ? WeightLayout::in_out
                                                                           : WeightLayout::out_in),
                            transpose_layout(pruned, s)));
          // The one-pass path and the mask path produce the same object,
          // bit for bit (values compared as bytes: -0.0 must survive).
          const CompressedNM<float> fused = prune_and_compress(w, s, opt);
          EXPECT_TRUE(bitwise_equal(fused.values, c.values));
          EXPECT_EQ(fused.metadata, c.metadata);
          const CompressedNM<float> masked = compress(w, nm_mask(w, s, opt));
          EXPECT_TRUE(bitwise_equal(masked.values, c.values));
          EXPECT_EQ(masked.metadata, c.metadata);

          // int8 values: the same positions, exact round trip.
          std::vector<int8_t> q(pruned.size());
          for (std::size_t e = 0; e < q.size(); ++e) {
            q[e] = static_cast<int8_t>(std::clamp(std::lround(pruned[e] * 60.0f), -128L, 127L));
          }
          const CompressedNM<int8_t> cq = compress(q, s, opt);
          EXPECT_EQ(decompress(cq, layout), q);
        }
      }
    }
  }
}

TEST(SparseCompressed, OnePassCrossesOutputBlocks) {
  // The in_out 2:4 path works in blocks of 64 outputs: cross a boundary.
  const WeightShape s{130, 20, WeightLayout::in_out};
  const auto w = random_weights(s.size(), 31, true);
  const CompressedNM<float> fused = prune_and_compress(w, s);
  const CompressedNM<float> ref = compress(prune_nm(w, s), s);
  EXPECT_TRUE(bitwise_equal(fused.values, ref.values));
  EXPECT_EQ(fused.metadata, ref.metadata);
}

TEST(SparseCompressed, ReusedObjectGivesTheFreshResult) {
  CompressedNM<float> c = prune_and_compress(random_weights(8 * 64, 1), {8, 64}, {{1, 4}});
  for (WeightLayout layout : {WeightLayout::out_in, WeightLayout::in_out}) {
    for (const PruneOptions& opt : {PruneOptions{}, PruneOptions{{3, 8}, TailPolicy::pad_zeros}}) {
      const WeightShape s{5, 36, layout};
      const auto w = random_weights(s.size(), 2);
      prune_and_compress(w, s, opt, c);
      const CompressedNM<float> fresh = prune_and_compress(w, s, opt);
      EXPECT_TRUE(bitwise_equal(c.values, fresh.values));
      EXPECT_EQ(c.metadata, fresh.metadata);
      EXPECT_EQ(c.inputs, 36);
      EXPECT_EQ(c.pattern, opt.pattern);
    }
  }
}

TEST(SparseCompressed, TwoFourSizesMatchTheGemmContract) {
  // Per output row: K/2 int8 values and K/8 metadata bytes (2 bits per
  // value: 0.625 bytes per input), rows in output order, for either input
  // layout.
  const WeightShape s{3, 64, WeightLayout::in_out};
  const auto w = prune_nm(random_weights(s.size(), 4), s);
  std::vector<int8_t> q(w.size());
  for (std::size_t e = 0; e < q.size(); ++e) q[e] = static_cast<int8_t>(std::lround(w[e] * 30));
  const CompressedNM<int8_t> c = compress(q, s);
  EXPECT_EQ(c.values_per_row(), 32);
  EXPECT_EQ(c.metadata_bytes_per_row(), 8);
  EXPECT_EQ(c.index_bits(), 2);
  EXPECT_EQ(c.values.size(), 3u * 32);
  EXPECT_EQ(c.metadata.size(), 3u * 8);
  EXPECT_EQ(c.bytes(), 3 * 40);  // 0.625 * 3 * 64
  for (int64_t o = 0; o < 3; ++o) {
    for (int64_t g = 0; g < 16; ++g) {
      for (int j = 0; j < 2; ++j) {
        EXPECT_EQ(c.values[o * 32 + g * 2 + j], q[s.index(o, g * 4 + c.index(o, g, j))]);
      }
    }
  }
}

TEST(SparseCompressed, TwoFourByteLayout) {
  // The example of the header: group 0 keeps inputs {1, 3}, group 1 keeps
  // {0, 2} -> byte 0b10'00'11'01 = 0x8D; a second row with groups {0,1},
  // {2,3} -> 0b11'10'01'00 = 0xE4.
  const WeightShape s{2, 8, WeightLayout::out_in};
  const std::vector<float> w = {0, 5, 0, -6, 7, 0, 8, 0,  //
                                1, 2, 0, 0,  0, 0, 3, 4};
  const CompressedNM<float> c = compress(w, s);
  ASSERT_EQ(c.metadata.size(), 2u);
  EXPECT_EQ(c.metadata[0], 0x8D);
  EXPECT_EQ(c.metadata[1], 0xE4);
  EXPECT_EQ(c.values, (std::vector<float>{5, -6, 7, 8, 1, 2, 3, 4}));
}

TEST(SparseCompressed, GeneralBitStreamStraddlesBytes) {
  // 2:8 uses 3-bit indices: slot s at bits [3s, 3s+3). Group 0 keeps {2, 7},
  // group 1 keeps {5, 6}: fields 2, 7, 5, 6 -> bits
  //   010 | 111 | 101 | 110 (LSB first) = 0b110'101'111'010 = 0xD7A.
  const WeightShape s{1, 16, WeightLayout::out_in};
  std::vector<float> w(16, 0.0f);
  w[2] = 1;
  w[7] = 2;
  w[8 + 5] = 3;
  w[8 + 6] = 4;
  const CompressedNM<float> c = compress(w, s, {{2, 8}});
  ASSERT_EQ(c.metadata.size(), 2u);  // 12 bits
  EXPECT_EQ(c.metadata[0], 0x7A);
  EXPECT_EQ(c.metadata[1], 0x0D);
  EXPECT_EQ(c.index(0, 0, 1), 7);  // bits 3..5, inside byte 0
  EXPECT_EQ(c.index(0, 1, 0), 5);  // bits 6..8, straddles bytes 0 and 1
  EXPECT_EQ(decompress(c), w);
}

TEST(SparseCompressed, GroupsWithFewerNonZerosFillTheLowestFreeSlots) {
  const WeightShape s{1, 8, WeightLayout::out_in};
  const std::vector<float> w = {0, 0, 0, 9, 0, 0, 0, 0};
  const CompressedNM<float> c = compress(w, s);
  EXPECT_EQ(c.index(0, 0, 0), 0);
  EXPECT_EQ(c.index(0, 0, 1), 3);
  EXPECT_EQ(c.index(0, 1, 0), 0);
  EXPECT_EQ(c.index(0, 1, 1), 1);
  EXPECT_EQ(c.values, (std::vector<float>{0, 9, 0, 0}));
  EXPECT_EQ(decompress(c), w);
  // A mask that keeps a weight drops the others even in the free slots.
  SparseMask mask{s, {2, 4}, {0, 0, 0, 1, 0, 0, 0, 0}};
  const std::vector<float> dense = {1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(decompress(compress(dense, mask)), (std::vector<float>{0, 0, 0, 4, 0, 0, 0, 0}));
}

TEST(SparseCompressed, PaddedTailOnlyPointsToZeros) {
  // K = 5 with 3:4 -> the last group has one real input; its other two slots
  // point to padded inputs 5 and 6 and hold 0.
  const WeightShape s{1, 5, WeightLayout::out_in};
  const std::vector<float> w = {1, 2, 3, 0, 4};
  const PruneOptions opt{{3, 4}, TailPolicy::pad_zeros};
  EXPECT_THROW(compress(w, s, {{3, 4}}), Error);  // refuse by default
  CompressedNM<float> c = compress(w, s, opt);
  EXPECT_EQ(c.index(0, 1, 0), 0);
  EXPECT_EQ(c.index(0, 1, 1), 1);
  EXPECT_EQ(c.index(0, 1, 2), 2);
  EXPECT_EQ(decompress(c), w);
  c.values.back() = 1.0f;  // a value at a padded position is corrupt
  EXPECT_THROW(decompress(c), Error);
}

TEST(SparseCompressed, RejectsDenseGroupsAndBadInput) {
  const WeightShape s{2, 8, WeightLayout::out_in};
  auto w = prune_nm(random_weights(s.size(), 8), s);
  w[s.index(1, 5)] = w[s.index(1, 6)] = w[s.index(1, 7)] = w[s.index(1, 4)] = 1.0f;
  try {
    compress(w, s);
    ADD_FAILURE() << "a 4-of-4 group was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("output 1 group 1"), std::string::npos) << e.what();
  }
  SparseMask mask = nm_mask(w, s);
  mask.keep[s.index(0, 0)] = mask.keep[s.index(0, 1)] = mask.keep[s.index(0, 2)] = 1;
  EXPECT_THROW(compress(std::span<const float>(w), mask), Error);
  w[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(compress(w, s), Error);
  EXPECT_THROW(prune_and_compress(w, s), Error);
  EXPECT_THROW(prune_and_compress(w, {2, 8, WeightLayout::in_out}), Error);
  EXPECT_THROW(prune_and_compress(w, s, {{1, 8}}), Error);
  EXPECT_THROW(compress(w, s, {{4, 4}}), Error);
  EXPECT_THROW(compress(w, WeightShape{3, 8}), Error);
}

TEST(SparseCompressed, ValidateCatchesCorruption) {
  const WeightShape s{2, 8, WeightLayout::out_in};
  const auto w = prune_nm(random_weights(s.size(), 12), s);
  const CompressedNM<float> good = compress(w, s);
  EXPECT_NO_THROW(good.validate());
  CompressedNM<float> c = good;
  c.metadata[0] = 0x05;  // group 0 indices 1, 1: not increasing
  EXPECT_THROW(decompress(c), Error);
  c = good;
  c.values.pop_back();
  EXPECT_THROW(decompress(c), Error);
  c = good;
  c.metadata.push_back(0);
  EXPECT_THROW(decompress(c), Error);
  c = good;
  c.pattern = {4, 4};
  EXPECT_THROW(decompress(c), Error);
  // 2:8 with K=8: 6 of 8 bits used; the 2 unused ones must be 0.
  CompressedNM<float> d = compress(std::vector<float>(8, 0.0f), {1, 8}, {{2, 8}});
  d.metadata[0] |= 0x80;
  EXPECT_THROW(decompress(d), Error);
}

}  // namespace
}  // namespace sparq
