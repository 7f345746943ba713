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
    testing::check_int32_gemm<T>(rng_, m, n, k, zp, lda_extra, ldc_extra, threads);
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

TEST_P(GemmInt32Test, ThreadCountsGiveIdenticalResults) { testing::check_thread_counts(rng_); }

TEST_P(GemmInt32Test, ExtremeValuesNeverSaturate) { testing::check_extreme_values(3); }

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
  EXPECT_THROW(gemm(ActivationsU8{a.data(), 1, k, 0, 0}, packed, Int32Output{}, c.data()), Error);
  // At K = 65,793 the same data fits (in the K-split path) and is exact.
  const int64_t k2 = 65793;
  const PackedWeights packed2 = pack_weights(w.data(), 2, k2, WeightLayout::out_in);
  gemm(ActivationsU8{a.data(), 1, k2, 0, 0}, packed2, Int32Output{}, c.data());
  EXPECT_EQ(c[0], int64_t{-32640} * k2);
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(GemmInt32Test);

}  // namespace
}  // namespace sparq
