// Observer kernels: every ISA's kernels give bit-identical results to the
// scalar reference (min/max exact, histogram counts exact integers, NaN/Inf
// counts exact) on random and adversarial data, at sizes around every vector
// width and unroll factor, at unaligned offsets.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/observe_kernels.hpp"
#include "kernels/special_floats.hpp"
#include "support/isa_param.hpp"

namespace sparq::detail {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

class ObserveKernelTest : public sparq::testing::IsaTest {};

std::vector<float> adversarial(std::size_t n, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) {
    x = rng() % 11 == 0
            ? sparq::testing::kSpecialFloats[rng() % std::size(sparq::testing::kSpecialFloats)]
            : dist(rng);
  }
  return v;
}

uint32_t bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

void expect_same(const MinMaxAccum& a, const MinMaxAccum& b, const char* what, std::size_t n) {
  EXPECT_EQ(bits(a.min), bits(b.min)) << what << " n=" << n << " " << a.min << " " << b.min;
  EXPECT_EQ(bits(a.max), bits(b.max)) << what << " n=" << n;
  EXPECT_EQ(a.nan_count, b.nan_count) << what << " n=" << n;
  EXPECT_EQ(a.inf_count, b.inf_count) << what << " n=" << n;
}

const std::size_t kSizes[] = {0,  1,  3,  7,  8,  9,  15,  16,  17,  31,
                              32, 33, 47, 63, 64, 65, 100, 255, 257, 1031};

TEST_P(ObserveKernelTest, MinMaxIsBitExact) {
  const ObserveKernels& k = observe_kernels(GetParam());
  uint64_t seed = 0;
  for (std::size_t n : kSizes) {
    for (std::size_t offset : {0, 1, 3}) {
      for (int clean = 0; clean < 2; ++clean) {
        auto buf = adversarial(n + offset, ++seed, 5.0f);
        if (clean) {
          for (auto& x : buf) x = std::isfinite(x) ? x : 1.5f;
        }
        const float* x = buf.data() + offset;
        MinMaxAccum ref{kInf, -kInf, 0, 0}, got{kInf, -kInf, 0, 0};
        observe_minmax_f32__reference(x, n, &ref);
        k.minmax(x, n, &got);
        expect_same(ref, got, "minmax", n);
        // Folding into a running accumulator.
        MinMaxAccum ref2{-0.25f, 0.25f, 3, 4}, got2{-0.25f, 0.25f, 3, 4};
        observe_minmax_f32__reference(x, n, &ref2);
        k.minmax(x, n, &got2);
        expect_same(ref2, got2, "minmax (running)", n);
      }
    }
  }
}

TEST_P(ObserveKernelTest, ZeroSignIsCanonical) {
  const ObserveKernels& k = observe_kernels(GetParam());
  for (std::size_t n : {1, 16, 40, 129}) {
    std::vector<float> x(n, -0.0f);
    for (std::size_t i = 0; i < n; i += 3) x[i] = 0.0f;
    MinMaxAccum got{kInf, -kInf, 0, 0};
    k.minmax(x.data(), n, &got);
    EXPECT_EQ(bits(got.min), 0u) << n;
    EXPECT_EQ(bits(got.max), 0u) << n;
  }
}

TEST_P(ObserveKernelTest, MinMaxColumnsIsBitExact) {
  const ObserveKernels& k = observe_kernels(GetParam());
  uint64_t seed = 100;
  for (std::size_t n : kSizes) {
    std::vector<float> ref_min(n, kInf), ref_max(n, -kInf), got_min(n, kInf), got_max(n, -kInf);
    MinMaxAccum ref{kInf, -kInf, 0, 0}, got{kInf, -kInf, 0, 0};
    for (int row = 0; row < 4; ++row) {
      const auto x = adversarial(n, ++seed, 2.0f);
      observe_minmax_columns_f32__reference(x.data(), n, ref_min.data(), ref_max.data(), &ref);
      k.minmax_columns(x.data(), n, got_min.data(), got_max.data(), &got);
    }
    for (std::size_t i = 0; i < n; ++i) {
      EXPECT_EQ(bits(ref_min[i]), bits(got_min[i])) << n << " " << i;
      EXPECT_EQ(bits(ref_max[i]), bits(got_max[i])) << n << " " << i;
    }
    EXPECT_EQ(ref.nan_count, got.nan_count);
    EXPECT_EQ(ref.inf_count, got.inf_count);
  }
}

// Sums the sub-histograms bins [0, bins).
std::vector<uint64_t> total(const std::vector<uint32_t>& sub, std::size_t bins,
                            std::size_t stride) {
  std::vector<uint64_t> t(bins, 0);
  for (int s = 0; s < kSubHistograms; ++s) {
    for (std::size_t i = 0; i < bins; ++i) t[i] += sub[s * stride + i];
  }
  return t;
}

TEST_P(ObserveKernelTest, HistogramIsBitExact) {
  const ObserveKernels& k = observe_kernels(GetParam());
  struct Grid {
    float scale;
    float inv_width;
    int32_t k0;
    int32_t bins;
  };
  // Grids that cover the finite data and grids it falls off (values clamped
  // into the edge bins, and the huge specials beyond +-2^30 bins).
  const Grid grids[] = {{5.0f, 64.0f, -1024, 2048},
                        {5.0f, 1.0f, -3, 7},
                        {1e-30f, 0x1p100f, -5000, 16},
                        {3.0f, 0.5f, 0, 2048},
                        {1.0f, 0x1p-20f, 0, 16}};
  uint64_t seed = 500;
  for (const Grid& g : grids) {
    for (std::size_t n : kSizes) {
      const auto x = adversarial(n, ++seed, g.scale);
      const std::size_t stride = static_cast<std::size_t>(g.bins) + 1;
      std::vector<uint32_t> ref_sub(kSubHistograms * stride, 0), got_sub = ref_sub;
      const HistogramArgs ref_args{x.data(), n, g.inv_width, g.k0, g.bins, stride, ref_sub.data()};
      HistogramArgs got_args = ref_args;
      got_args.counts = got_sub.data();
      MinMaxAccum ref{kInf, -kInf, 0, 0}, got{kInf, -kInf, 0, 0};
      observe_histogram_f32__reference(ref_args, &ref);
      k.histogram(got_args, &got);
      expect_same(ref, got, "histogram", n);
      const auto rt = total(ref_sub, g.bins, stride), gt = total(got_sub, g.bins, stride);
      EXPECT_EQ(rt, gt) << "n=" << n << " bins=" << g.bins;
      uint64_t finite = 0;
      for (float v : x) finite += std::isfinite(v);
      uint64_t counted = 0;
      for (uint64_t c : gt) counted += c;
      EXPECT_EQ(counted, finite) << n;  // every finite value binned once, nothing else
    }
  }
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(ObserveKernelTest);

}  // namespace
}  // namespace sparq::detail
