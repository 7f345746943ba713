// Prune then quantize: qparams from the surviving weights, and compressed
// int8 values equal to the quantized dense pruned matrix.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

#include "sparq/quant/quantize.hpp"
#include "sparq/sparse/prune_quantize.hpp"
#include "unit/sparse_test_util.hpp"

namespace sparq {
namespace {

using testing::random_weights;

// Dense row-major shape of a weight matrix for sparq::quantize.
std::vector<int64_t> dense_shape(const WeightShape& s) {
  return s.layout == WeightLayout::out_in ? std::vector<int64_t>{s.outputs, s.inputs}
                                          : std::vector<int64_t>{s.inputs, s.outputs};
}

TEST(SparsePruneQuantize, QParamsComeFromTheSurvivingWeights) {
  // Row 0 group 0 is {5, 4, -3, 0.1}: 2:4 drops -3, the minimum of the whole
  // matrix, so the asymmetric range shrinks from [-3, 5] to [-1, 5].
  const WeightShape s{2, 4, WeightLayout::out_in};
  const std::vector<float> w = {5, 4, -3, 0.1f, -1, 0.5f, 0.25f, 0};
  const SparseMask mask = nm_mask(w, s);
  QuantSpec asym;
  asym.scheme = Scheme::asymmetric;
  EXPECT_EQ(pruned_qparams(w, mask, asym), compute_qparams(-1, 5, asym));
  EXPECT_NE(pruned_qparams(w, mask, asym), compute_qparams(-3, 5, asym));
  // Symmetric: the largest |w| of every group survives, so nothing changes.
  EXPECT_EQ(pruned_qparams(w, mask), compute_qparams(-3, 5));
}

TEST(SparsePruneQuantize, RandomMatricesMatchAnIndependentRange) {
  for (WeightLayout layout : {WeightLayout::out_in, WeightLayout::in_out}) {
    const WeightShape s{6, 16, layout};
    const auto w = random_weights(s.size(), 7);
    const SparseMask mask = nm_mask(w, s, {{1, 4}});
    for (Scheme scheme : {Scheme::symmetric, Scheme::asymmetric}) {
      QuantSpec spec;
      spec.scheme = scheme;
      float lo = std::numeric_limits<float>::max(), hi = -lo;
      std::vector<float> mins(6, lo), maxs(6, hi);
      for (int64_t o = 0; o < 6; ++o)
        for (int64_t i = 0; i < 16; ++i)
          if (mask.kept(o, i)) {
            const float x = w[s.index(o, i)];
            lo = std::min(lo, x);
            hi = std::max(hi, x);
            mins[o] = std::min(mins[o], x);
            maxs[o] = std::max(maxs[o], x);
          }
      EXPECT_EQ(pruned_qparams(w, mask, spec), compute_qparams(lo, hi, spec));
      spec.granularity = Granularity::per_channel;
      spec.axis = layout == WeightLayout::out_in ? 0 : 1;
      EXPECT_EQ(pruned_channel_qparams(w, mask, spec), compute_qparams(mins, maxs, spec));
    }
  }
}

TEST(SparsePruneQuantize, CompressedInt8EqualsQuantizedDensePruned) {
  uint32_t seed = 20;
  for (WeightLayout layout : {WeightLayout::out_in, WeightLayout::in_out}) {
    for (bool narrow : {false, true}) {
      const WeightShape s{9, 40, layout};
      const auto w = random_weights(s.size(), seed++);
      const SparseMask mask = nm_mask(w, s);
      std::vector<float> pruned(w);
      mask.apply(pruned);
      const CompressedNM<float> c = compress(pruned, s);
      const auto shape = dense_shape(s);

      QuantSpec spec;
      spec.narrow_range = narrow;
      const QParams qp = pruned_qparams(w, mask, spec);
      std::vector<int8_t> dense(pruned.size());
      quantize<int8_t>(pruned, shape, spec, qp, dense);
      const CompressedNM<int8_t> q = quantize_compressed(c, qp, spec);
      EXPECT_EQ(q.metadata, c.metadata);
      EXPECT_EQ(decompress(q, layout), dense);
      EXPECT_EQ(compress(dense, s).values.size(), q.values.size());

      QuantSpec cspec = spec;
      cspec.granularity = Granularity::per_channel;
      cspec.axis = layout == WeightLayout::out_in ? 0 : 1;
      const ChannelQParams cqp = pruned_channel_qparams(w, mask, cspec);
      quantize<int8_t>(pruned, shape, cspec, cqp, dense);
      EXPECT_EQ(decompress(quantize_compressed(c, cqp, cspec), layout), dense);
    }
  }
}

TEST(SparsePruneQuantize, RefusesWhatWouldBreakExactZeros) {
  const WeightShape s{2, 8, WeightLayout::out_in};
  const auto w = random_weights(s.size(), 3);
  const SparseMask mask = nm_mask(w, s);
  const CompressedNM<float> c = prune_and_compress(w, s);
  QuantSpec asym;
  asym.scheme = Scheme::asymmetric;
  EXPECT_THROW(quantize_compressed(c, QParams{0.1f, 3}, asym), Error);
  EXPECT_THROW(quantize_compressed(c, QParams{0.1f, 3}), Error);  // zp != 0
  QuantSpec u8;
  u8.dtype = DType::u8;
  EXPECT_THROW(quantize_compressed(c, QParams{0.1f, 0}, u8), Error);
  EXPECT_THROW(quantize_compressed(c, QParams{0.0f, 0}), Error);  // scale
  QuantSpec pc;
  pc.granularity = Granularity::per_channel;
  ChannelQParams three{{0.1f, 0.1f, 0.1f}, {0, 0, 0}, 0};
  EXPECT_THROW(quantize_compressed(c, three, pc), Error);  // 3 channels for 2 outputs
  EXPECT_THROW(pruned_qparams(w, mask, pc), Error);        // granularity mismatch
  EXPECT_THROW(pruned_channel_qparams(w, mask, QuantSpec{}), Error);
  pc.axis = 1;  // the inputs of an out_in matrix
  EXPECT_THROW(pruned_channel_qparams(w, mask, pc), Error);
  pc.axis = -2;
  EXPECT_NO_THROW(pruned_channel_qparams(w, mask, pc));
  EXPECT_THROW(pruned_qparams(random_weights(4, 1), mask), Error);
}

}  // namespace
}  // namespace sparq
