// Bit-exactness of the int32 GEMM on every ISA of the host (docs/design.md rule 5):
// shapes around the register tile (M in 1..2*MR, N in 1..2*NR), K around the
// k-group and powers of two, leading dimensions > K, extreme zero points and
// values, s8 activations, thread counts 1 and 2, and K across the int32
// overflow bound.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/gemm_kernels.hpp"
#include "kernels/gemm_test_support.hpp"
#include "sparq/gemm/gemm.hpp"
#include "support/isa_param.hpp"

namespace sparq {
namespace {

using testing::random_bytes;
using testing::reference_gemm;

class GemmInt32Test : public testing::IsaTest {
 protected:
  const detail::GemmKernels& kernels() const { return detail::gemm_kernels(GetParam()); }

  // Runs one shape with random data and checks every output element.
  template <class T>
  void check(int64_t m, int64_t n, int64_t k, int32_t zp, int64_t lda_extra = 0,
             int64_t ldc_extra = 0, int threads = 1) {
    SCOPED_TRACE(::testing::Message()
                 << "m=" << m << " n=" << n << " k=" << k << " zp=" << zp << " lda+" << lda_extra
                 << " ldc+" << ldc_extra << " threads=" << threads);
    const int64_t lda = k + lda_extra;
    const int64_t ldc = n + ldc_extra;
    const auto a = random_bytes<T>(static_cast<std::size_t>(m * lda), rng_);
    const auto w = random_bytes<int8_t>(static_cast<std::size_t>(n * k), rng_);
    const PackedWeights packed = pack_weights(w.data(), n, k, WeightLayout::out_in);
    std::vector<int32_t> c(static_cast<std::size_t>(m * ldc), -7);
    gemm(Activations<T>{a.data(), m, k, lda, zp}, packed, c.data(), ldc, GemmOptions{threads});
    const auto ref = reference_gemm(a.data(), m, k, lda, zp, w.data(), n);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < ldc; ++j) {
        const int32_t got = c[static_cast<std::size_t>(i * ldc + j)];
        if (j < n) {
          ASSERT_EQ(got, ref[static_cast<std::size_t>(i * n + j)])
              << "at (" << i << ", " << j << ")";
        } else {
          ASSERT_EQ(got, -7) << "wrote past n at (" << i << ", " << j << ")";
        }
      }
    }
  }

  std::mt19937 rng_{1234};
};

TEST_P(GemmInt32Test, RowsAroundTheTile) {
  const int mr = kernels().mr;
  for (int64_t m = 1; m <= 2 * mr + 1; ++m) check<uint8_t>(m, 17, 37, 3);
}

TEST_P(GemmInt32Test, ColumnsAroundThePanel) {
  const int nr = kernels().nr;
  for (int64_t n = 1; n <= 2 * nr + 1; ++n) check<uint8_t>(n % 3 + 1, n, 9, 128);
}

TEST_P(GemmInt32Test, DepthsAroundGroupsAndPowersOfTwo) {
  for (int64_t k : {1, 2, 3, 4, 5, 7, 8, 31, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1021}) {
    check<uint8_t>(5, 19, k, 255);
    check<int8_t>(3, 70, k, -128);
  }
}

TEST_P(GemmInt32Test, MixedShapes) {
  const int mr = kernels().mr;
  const int nr = kernels().nr;
  for (int64_t m : {int64_t{1}, int64_t{mr}, int64_t{mr + 1}, int64_t{2 * mr + 3}}) {
    for (int64_t n : {int64_t{1}, int64_t{nr - 1}, int64_t{nr}, int64_t{nr + 1}, int64_t{131}}) {
      check<uint8_t>(m, n, 61, 1);
    }
  }
}

TEST_P(GemmInt32Test, LeadingDimensions) {
  check<uint8_t>(7, 33, 29, 0, 3, 5);
  check<int8_t>(7, 33, 29, 5, 64, 1);
  check<uint8_t>(13, 65, 128, 127, 1, 0);
}

TEST_P(GemmInt32Test, ZeroPoints) {
  for (int32_t zp : {0, 1, 127, 128, 255}) check<uint8_t>(4, 40, 100, zp);
  for (int32_t zp : {-128, -127, -1, 0, 1, 127}) check<int8_t>(4, 40, 100, zp);
}

TEST_P(GemmInt32Test, ThreadCountsGiveIdenticalResults) {
  // Many panels (split over N) and few panels with many rows (split over M).
  // Big enough (> 8 M multiply-adds) that the driver really uses 2-3 threads.
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{40, 300, 801}, {230, 9, 4100}}) {
    const auto a = random_bytes<uint8_t>(static_cast<std::size_t>(m * k), rng_);
    const auto w = random_bytes<int8_t>(static_cast<std::size_t>(n * k), rng_);
    const PackedWeights packed = pack_weights(w.data(), n, k, WeightLayout::out_in);
    std::vector<int32_t> c1(static_cast<std::size_t>(m * n)), c2(c1.size()), c3(c1.size());
    gemm(ActivationsU8{a.data(), m, k, 0, 9}, packed, c1.data(), 0, GemmOptions{1});
    gemm(ActivationsU8{a.data(), m, k, 0, 9}, packed, c2.data(), 0, GemmOptions{2});
    gemm(ActivationsU8{a.data(), m, k, 0, 9}, packed, c3.data(), 0, GemmOptions{3});
    EXPECT_EQ(c1, c2);
    EXPECT_EQ(c1, c3);
    check<int8_t>(m, n, k, -3, 0, 0, 2);
  }
}

TEST_P(GemmInt32Test, ExtremeValuesNeverSaturate) {
  // Activations all 255 and weights all -128: every product is -32640, the
  // largest magnitude u8 x s8 has; an int16 pair sum (vpmaddubsw) would
  // saturate at -32768 and be wrong.
  for (int64_t k : {2, 4, 64, 1000}) {
    const int64_t m = 3;
    const int64_t n = 21;
    const std::vector<uint8_t> a(static_cast<std::size_t>(m * k), 255);
    const std::vector<int8_t> w(static_cast<std::size_t>(n * k), -128);
    const PackedWeights packed = pack_weights(w.data(), n, k, WeightLayout::out_in);
    std::vector<int32_t> c(static_cast<std::size_t>(m * n));
    gemm(ActivationsU8{a.data(), m, k, 0, 0}, packed, c.data());
    for (int32_t v : c) ASSERT_EQ(v, -32640 * k);
    const std::vector<int8_t> as(static_cast<std::size_t>(m * k), -128);
    gemm(ActivationsS8{as.data(), m, k, 0, 127}, packed, c.data());
    for (int32_t v : c) ASSERT_EQ(v, 255 * 128 * k);  // (-128 - 127) * -128
  }
}

TEST_P(GemmInt32Test, DepthAtTheInt32Bound) {
  // K = 65,792 is the last K whose worst case fits in one int32 kernel call;
  // above it the driver splits K and combines the chunks in int64.
  for (int64_t k : {detail::kMaxKChunk - 1, detail::kMaxKChunk, detail::kMaxKChunk + 1,
                    detail::kMaxKChunk + 5, 2 * detail::kMaxKChunk + 7}) {
    check<uint8_t>(2, 5, k, 77);
    check<int8_t>(1, 3, k, -128);
  }
}

TEST_P(GemmInt32Test, SumsBeyondInt32AreRefused) {
  const int64_t k = 65794;  // the first K with 255 * -128 * K < INT32_MIN
  const std::vector<uint8_t> a(static_cast<std::size_t>(k), 255);
  const std::vector<int8_t> w(static_cast<std::size_t>(2 * k), -128);
  const PackedWeights packed = pack_weights(w.data(), 2, k, WeightLayout::out_in);
  std::vector<int32_t> c(2);
  EXPECT_THROW(gemm(ActivationsU8{a.data(), 1, k, 0, 0}, packed, c.data()), Error);
  // At K = 65,793 the same data fits (in the K-split path) and is exact.
  const int64_t k2 = 65793;
  const PackedWeights packed2 = pack_weights(w.data(), 2, k2, WeightLayout::out_in);
  gemm(ActivationsU8{a.data(), 1, k2, 0, 0}, packed2, c.data());
  EXPECT_EQ(c[0], int64_t{-32640} * k2);
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(GemmInt32Test);

}  // namespace
}  // namespace sparq
