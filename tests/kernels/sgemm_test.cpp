// The FP32 GEMM (sparq/gemm/sgemm.hpp) on every ISA of the host, against a
// double-precision reference.
//
// Tolerance: each output is a sum of K products plus the bias, computed in
// float with one rounding per fused multiply-add, in some order. Any such
// evaluation of sum_{t < T} x_t (T = K + 1 terms) is within
// gamma_T * sum |x_t| of the exact sum, gamma_T = T u / (1 - T u),
// u = 2^-24 (Higham, Accuracy and Stability of Numerical Algorithms,
// section 3.1). The test uses that bound itself, computed from the same
// double reference: a rigorous bound, so it cannot fail by bad luck, yet it
// catches any wrong product, missing term or misplaced element (those are
// off by the size of a term, about sum|x_t| / K, far above gamma_T * sum|x_t|
// for the K used here). ReLU is 1-Lipschitz, so it keeps the bound.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "kernels/sgemm_kernels.hpp"
#include "sparq/error.hpp"
#include "sparq/gemm/sgemm.hpp"
#include "support/error_of.hpp"
#include "support/isa_param.hpp"

namespace sparq {
namespace {

class SgemmTest : public testing::IsaTest {
 protected:
  const detail::SgemmKernels& kernels() const { return detail::sgemm_kernels(GetParam()); }

  std::vector<float> random(std::size_t count) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> v(count);
    for (float& x : v) x = u(rng_);
    return v;
  }

  struct Case {
    int64_t m = 1, n = 1, k = 1;
    int64_t lda_extra = 0, ldc_extra = 0;
    bool bias = false, relu = false;
    WeightLayout layout = WeightLayout::out_in;
    int threads = 1;
  };

  // Runs one shape and checks every output element and the padding of C;
  // returns C for bit comparisons.
  std::vector<float> check(const Case& t) {
    SCOPED_TRACE(::testing::Message() << "m=" << t.m << " n=" << t.n << " k=" << t.k << " lda+"
                                      << t.lda_extra << " ldc+" << t.ldc_extra << " bias=" << t.bias
                                      << " relu=" << t.relu << " threads=" << t.threads);
    const int64_t lda = t.k + t.lda_extra, ldc = t.n + t.ldc_extra;
    const auto a = random(static_cast<std::size_t>(t.m * lda));
    const auto w = random(static_cast<std::size_t>(t.n * t.k));  // [n][k] or [k][n]
    const auto bias = t.bias ? random(static_cast<std::size_t>(t.n)) : std::vector<float>{};
    const PackedWeightsF32 packed = pack_weights_f32(w.data(), t.n, t.k, t.layout);
    EXPECT_EQ(packed.n(), t.n);
    EXPECT_EQ(packed.k(), t.k);
    std::vector<float> c(static_cast<std::size_t>(t.m * ldc), -7.0f);
    sgemm(a.data(), t.m, t.k, lda, packed, bias, t.relu, c.data(), ldc, GemmOptions{t.threads});
    constexpr double u = 0x1p-24;
    const double terms = static_cast<double>(t.k + 1);
    const double gamma = terms * u / (1.0 - terms * u);
    for (int64_t i = 0; i < t.m; ++i) {
      for (int64_t j = 0; j < ldc; ++j) {
        const float got = c[static_cast<std::size_t>(i * ldc + j)];
        if (j >= t.n) {
          EXPECT_EQ(got, -7.0f) << "wrote past n at (" << i << ", " << j << ")";
          continue;
        }
        double exact = t.bias ? bias[static_cast<std::size_t>(j)] : 0.0;
        double magnitude = std::abs(exact);
        for (int64_t kk = 0; kk < t.k; ++kk) {
          const double wv = t.layout == WeightLayout::out_in
                                ? w[static_cast<std::size_t>(j * t.k + kk)]
                                : w[static_cast<std::size_t>(kk * t.n + j)];
          const double p = static_cast<double>(a[static_cast<std::size_t>(i * lda + kk)]) * wv;
          exact += p;
          magnitude += std::abs(p);
        }
        if (t.relu) exact = std::max(exact, 0.0);
        const double tol = gamma * magnitude;
        if (!(std::abs(static_cast<double>(got) - exact) <= tol)) {
          ADD_FAILURE() << "at (" << i << ", " << j << "): got " << got << ", exact " << exact
                        << ", tolerance " << tol;
          return c;
        }
      }
    }
    return c;
  }

  std::mt19937 rng_{4321};
};

TEST_P(SgemmTest, RowsAroundTheTile) {
  for (int64_t m = 1; m <= 2 * kernels().mr + 1; ++m) check({.m = m, .n = 19, .k = 37});
}

TEST_P(SgemmTest, ColumnsAroundThePanel) {
  for (int64_t n = 1; n <= 2 * kernels().nr + 1; ++n) check({.m = 5, .n = n, .k = 23});
}

TEST_P(SgemmTest, KAroundTheKBlock) {
  // Below, at and above one K block, and several blocks with a short last one:
  // exercises the first/last-block bias and ReLU and the C reload.
  const int64_t kc = kernels().kc;
  for (int64_t k : {int64_t{1}, int64_t{2}, kc - 1, kc, kc + 1, 2 * kc + 3, 3 * kc}) {
    check({.m = kernels().mr + 3, .n = kernels().nr + 5, .k = k, .bias = true, .relu = true});
  }
}

TEST_P(SgemmTest, OddStridesAndLayouts) {
  check({.m = 7, .n = 13, .k = 29, .lda_extra = 3, .ldc_extra = 5});
  check({.m = 9,
         .n = 2 * kernels().nr + 3,
         .k = 41,
         .lda_extra = 1,
         .ldc_extra = 1,
         .bias = true,
         .layout = WeightLayout::in_out});
}

TEST_P(SgemmTest, BiasAndRelu) {
  for (bool bias : {false, true}) {
    for (bool relu : {false, true}) check({.m = 11, .n = 37, .k = 64, .bias = bias, .relu = relu});
  }
}

TEST_P(SgemmTest, ReluPropagatesNaN) {
  // max(x, 0) keeps a NaN (as std::max(x, 0) and PyTorch's relu do) instead of
  // turning it into 0: an invalid input must stay visible.
  const std::vector<float> w = {1.0f, 1.0f};
  const std::vector<float> a = {std::numeric_limits<float>::quiet_NaN(), 1.0f};
  const auto packed = pack_weights_f32(w.data(), 1, 2, WeightLayout::out_in);
  float c = 0.0f;
  sgemm(a.data(), 1, 2, 0, packed, {}, true, &c);
  EXPECT_TRUE(std::isnan(c));
}

TEST_P(SgemmTest, ThreadCountsGiveIdenticalBits) {
  // Large enough for the driver to use two threads (and split both rows and
  // panels on some ISAs); the same rng seed gives the same data each time.
  const Case base{.m = 4 * kernels().mr + 1,
                  .n = 8 * kernels().nr + 3,
                  .k = 2 * kernels().kc + 7,
                  .bias = true,
                  .relu = true};
  rng_.seed(99);
  const auto one = check(base);
  Case two = base;
  two.threads = 2;
  rng_.seed(99);
  const auto both = check(two);
  ASSERT_EQ(one.size(), both.size());
  for (std::size_t i = 0; i < one.size(); ++i) {
    ASSERT_EQ(std::memcmp(&one[i], &both[i], sizeof(float)), 0) << "element " << i;
  }
}

TEST_P(SgemmTest, RepacksWeightsPackedForAnotherIsa) {
  // Weights packed under the scalar table (NR = 8) and used under this ISA's:
  // sgemm repacks instead of misreading the panels.
  const auto w = random(7 * 45);
  const auto a = random(3 * 45);
  PackedWeightsF32 scalar_packed;
  {
    ScopedIsa scalar(Isa::scalar);
    scalar_packed = pack_weights_f32(w.data(), 45, 7, WeightLayout::in_out);
  }
  const auto native = pack_weights_f32(w.data(), 45, 7, WeightLayout::in_out);
  std::vector<float> c1(3 * 45), c2(3 * 45);
  sgemm(a.data(), 3, 7, 0, scalar_packed, {}, false, c1.data());
  sgemm(a.data(), 3, 7, 0, native, {}, false, c2.data());
  EXPECT_EQ(c1, c2);
}

TEST_P(SgemmTest, DirectReadsAcrossGroupsBlocksAndPartialTiles) {
  // On ISAs with a direct-A kernel (A read in place, lda apart): partial row
  // and column tiles, three K blocks, lda > k, and more panels than one L2
  // group holds (the driver groups 192 KiB of weights: 5 panels of K = 515
  // at NR = 16), with and without bias and ReLU.
  const int64_t mr = kernels().mr, nr = kernels().nr, kc = kernels().kc;
  check({.m = 2 * mr + 1,
         .n = 7 * nr + 5,
         .k = 2 * kc + 3,
         .lda_extra = 5,
         .ldc_extra = 2,
         .bias = true,
         .relu = true});
  check({.m = mr - 1, .n = nr + 1, .k = kc + 1, .lda_extra = 1});
}

// The contract, bit for bit: every output is the chain acc = fma(a, w, acc)
// over increasing k from the bias (first block) or from C. Checks the packed
// and (where the ISA has one) the direct-A microkernel on every row count,
// partial and full column counts, first and later blocks, with lda > kc.
TEST_P(SgemmTest, MicrokernelsMatchTheFmaChainBitForBit) {
  const auto& kern = kernels();
  const int mr = kern.mr, nr = kern.nr;
  for (int64_t kc : {int64_t{1}, int64_t{7}, int64_t{37}}) {
    const int64_t lda = kc + 3, ldc = nr + 2;
    const auto a = random(static_cast<std::size_t>(mr * lda));
    const auto w = random(static_cast<std::size_t>(kc * nr));  // one panel block [kc][NR]
    const auto bias = random(static_cast<std::size_t>(nr));
    const auto c0 = random(static_cast<std::size_t>(mr * ldc));
    std::vector<float> apack(static_cast<std::size_t>(kc * mr));
    for (int64_t kk = 0; kk < kc; ++kk) {
      for (int i = 0; i < mr; ++i) apack[kk * mr + i] = a[i * lda + kk];
    }
    for (int rows = 1; rows <= mr; ++rows) {
      for (int cols : {1, nr - 1, nr}) {
        for (int mode = 0; mode < 3; ++mode) {  // first + bias, first without bias, later block
          const bool first = mode < 2;
          const bool relu = mode == 1;
          std::vector<float> want = c0;
          for (int i = 0; i < rows; ++i) {
            for (int j = 0; j < cols; ++j) {
              float acc = !first ? c0[i * ldc + j] : mode == 0 ? bias[j] : 0.0f;
              for (int64_t kk = 0; kk < kc; ++kk)
                acc = std::fma(a[i * lda + kk], w[kk * nr + j], acc);
              want[i * ldc + j] = relu ? std::max(acc, 0.0f) : acc;
            }
          }
          for (const bool direct : {false, true}) {
            if (direct && kern.ukernel_direct == nullptr) continue;
            SCOPED_TRACE(::testing::Message() << "kc=" << kc << " rows=" << rows << " cols=" << cols
                                              << " mode=" << mode << " direct=" << direct);
            std::vector<float> c = c0;
            detail::SgemmUkernelParams u;
            u.a = direct ? a.data() : apack.data();
            u.lda = direct ? lda : 0;
            u.w = w.data();
            u.kc = kc;
            u.mr = rows;
            u.nr = cols;
            u.c = c.data();
            u.ldc = ldc;
            u.bias = mode == 0 ? bias.data() : nullptr;
            u.first = first;
            u.relu = relu;
            (direct ? kern.ukernel_direct : kern.ukernel)(u);
            ASSERT_EQ(std::memcmp(c.data(), want.data(), c.size() * sizeof(float)), 0)
                << "first differing element: "
                << std::mismatch(c.begin(), c.end(), want.begin()).first - c.begin();
          }
        }
      }
    }
  }
}

using testing::error_of;

TEST(SgemmApi, ValidatesArguments) {
  using ::testing::HasSubstr;
  const std::vector<float> w(64, 1.0f), a(64, 1.0f);
  std::vector<float> c(64);
  EXPECT_THAT(error_of([&] { pack_weights_f32(nullptr, 4, 4, WeightLayout::out_in); }),
              HasSubstr("weights is null"));
  EXPECT_THAT(error_of([&] { pack_weights_f32(w.data(), 0, 4, WeightLayout::out_in); }),
              HasSubstr("n (0) must be in [1, 2^31 - 1]"));
  EXPECT_THAT(error_of([&] { pack_weights_f32(w.data(), 4, -1, WeightLayout::out_in); }),
              HasSubstr("k (-1) must be in [1, 2^31 - 1]"));
  EXPECT_THAT(error_of([&] { pack_weights_f32(w.data(), 4, 8, WeightLayout::out_in, 5); }),
              HasSubstr("ld (5) must be 0 or >= 8"));
  EXPECT_THAT(error_of([&] { pack_weights_f32(w.data(), 8, 4, WeightLayout::in_out, 7); }),
              HasSubstr("ld (7) must be 0 or >= 8"));

  const auto packed = pack_weights_f32(w.data(), 4, 8, WeightLayout::out_in);  // n 4, k 8
  EXPECT_THAT(error_of([&] { sgemm(a.data(), 2, 8, 0, PackedWeightsF32{}, {}, false, c.data()); }),
              HasSubstr("packed weights are empty"));
  EXPECT_THAT(error_of([&] { sgemm(a.data(), 2, 7, 0, packed, {}, false, c.data()); }),
              HasSubstr("k (7) must equal the packed weights' k (8)"));
  EXPECT_THAT(error_of([&] { sgemm(a.data(), -1, 8, 0, packed, {}, false, c.data()); }),
              HasSubstr("m (-1) must be >= 0"));
  EXPECT_THAT(error_of([&] { sgemm(a.data(), 2, 8, 6, packed, {}, false, c.data()); }),
              HasSubstr("lda (6) must be 0 or >= k (8)"));
  EXPECT_THAT(error_of([&] { sgemm(a.data(), 2, 8, 0, packed, {}, false, c.data(), 3); }),
              HasSubstr("ldc (3) must be 0 or >= n (4)"));
  const std::vector<float> bias3(3, 0.0f);
  EXPECT_THAT(error_of([&] { sgemm(a.data(), 2, 8, 0, packed, bias3, false, c.data()); }),
              HasSubstr("bias has 3 values; expected 0 or n (4)"));
  EXPECT_THAT(error_of([&] { sgemm(nullptr, 2, 8, 0, packed, {}, false, c.data()); }),
              HasSubstr("a is null"));
  EXPECT_THAT(error_of([&] { sgemm(a.data(), 2, 8, 0, packed, {}, false, nullptr); }),
              HasSubstr("c is null"));
  EXPECT_THAT(
      error_of([&] { sgemm(a.data(), 2, 8, 0, packed, {}, false, c.data(), 0, {.threads = -2}); }),
      HasSubstr("options.threads (-2) must be >= 0"));
  // m = 0 touches nothing, not even the null pointers.
  EXPECT_NO_THROW(sgemm(nullptr, 0, 8, 0, packed, {}, false, nullptr));
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(SgemmTest);

}  // namespace
}  // namespace sparq
