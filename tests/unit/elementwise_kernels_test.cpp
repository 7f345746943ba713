// The transformer's element-wise kernels (src/kernels/elementwise_kernels.hpp)
// on every ISA the host runs, against the scalar reference (std::erf,
// std::tanh, std::exp; sums in double) and, for the polynomials, against
// double-precision math: a dense sweep, edge values (0, -0, +-inf, NaN,
// huge |x|, denormals), every tail length at unaligned offsets, in place.
// The SIMD kernels are polynomial approximations, so the comparisons carry
// tolerances (docs/design.md rule 6), each stated in float ulps with why.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "kernels/elementwise_kernels.hpp"
#include "support/isa_param.hpp"

namespace sparq::detail {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

class ElementwiseKernelTest : public sparq::testing::IsaTest {
 protected:
  const ElementwiseKernels& k() const { return elementwise_kernels(GetParam()); }
  const ElementwiseKernels& ref() const { return elementwise_kernels(Isa::scalar); }
};

/// A dense sweep of [lo, hi] plus the edge values every kernel must handle.
std::vector<float> sweep(float lo, float hi, int points) {
  std::vector<float> x;
  for (int i = 0; i <= points; ++i) x.push_back(lo + (hi - lo) * static_cast<float>(i) / points);
  const float edges[] = {0.0f,    -0.0f,   kInf,     -kInf,   kNaN,     1e30f,
                         -1e30f,  FLT_MAX, -FLT_MAX, FLT_MIN, -FLT_MIN, 1e-40f,
                         -1e-40f, 1e-7f,   -1e-7f,   0.625f,  -0.625f,  0.927734375f * 1.41421356f,
                         88.7f,   -88.7f,  89.5f,    -104.0f, -110.5f,  20.0f,
                         -20.0f};
  x.insert(x.end(), std::begin(edges), std::end(edges));
  return x;
}

std::vector<float> run_kernel(UnaryF32Fn f, const std::vector<float>& x) {
  std::vector<float> y(x.size());
  f(x.data(), y.data(), x.size());
  return y;
}

/// Largest |got - want| / scale(x) over the values where both are finite;
/// non-finite results must agree exactly (NaN with NaN, inf with same-sign inf).
template <class Scale>
double max_scaled_error(const std::vector<float>& x, const std::vector<float>& got,
                        const std::vector<double>& want, Scale scale) {
  double worst = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const auto w = static_cast<float>(want[i]);
    if (std::isnan(w) || std::isinf(w)) {
      EXPECT_TRUE(std::isnan(w) ? std::isnan(got[i]) : got[i] == w)
          << "x = " << x[i] << ": got " << got[i] << ", want " << w;
      continue;
    }
    EXPECT_TRUE(std::isfinite(got[i])) << "x = " << x[i] << ": got " << got[i] << ", want " << w;
    worst = std::max(worst, std::abs(static_cast<double>(got[i]) - want[i]) / scale(x[i], want[i]));
  }
  return worst;
}

std::vector<double> as_double(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// One float ulp of a value (at least the smallest normal's, so denormal
// results are compared on the absolute scale of FLT_MIN's ulp).
double ulp(double v) { return std::max(std::abs(v), static_cast<double>(FLT_MIN)) * FLT_EPSILON; }

double ulp_scale(float, double want) { return ulp(want); }

// GELU's error is stated relative to |x|: for x > 0 GELU(x) ~ x, and for
// x < 0 the reference's own 1 + erf(z) cancels, so it is itself only
// accurate to ~eps * |x| there (the SIMD form, erfc directly, is better).
double gelu_scale(float x, double) {
  return std::max(std::abs(static_cast<double>(x)), static_cast<double>(FLT_MIN)) * FLT_EPSILON;
}

/// Runs kernel `fn` of `k` on a sweep of [lo, hi] and checks its largest
/// error, in units of scale(x, want), against truth(x) in double (at most
/// max_vs_truth) and against the scalar table's kernel (at most max_vs_ref,
/// which includes the reference's own error); prints the first.
template <class Truth, class Scale>
void check_unary(const ElementwiseKernels& k, const ElementwiseKernels& ref,
                 UnaryF32Fn ElementwiseKernels::*fn, const char* what, float lo, float hi,
                 Truth truth, Scale scale, double max_vs_truth, double max_vs_ref) {
  const std::vector<float> x = sweep(lo, hi, 1 << 20);
  std::vector<double> want;
  for (float v : x) want.push_back(truth(static_cast<double>(v)));
  const std::vector<float> got = run_kernel(k.*fn, x);
  const double vs_truth = max_scaled_error(x, got, want, scale);
  EXPECT_LE(vs_truth, max_vs_truth) << what;
  EXPECT_LE(max_scaled_error(x, got, as_double(run_kernel(ref.*fn, x)), scale), max_vs_ref) << what;
  std::printf("[%s] %s: max error %.3f vs double\n", k.name, what, vs_truth);
}

// GELU(-inf) is -inf * 0 in the definitions: NaN, as the kernels give.
double gelu_at_neg_inf_or(double d, double value) {
  return std::isinf(d) && d < 0 ? std::nan("") : value;
}

TEST_P(ElementwiseKernelTest, ExpWithinFewUlps) {
  // Cephes' expf polynomial is good to ~1 ulp after an exact reduction; the
  // final scaling can add one more rounding. 3 ulps leaves room for both
  // and still fails a wrong coefficient (which costs hundreds of ulps).
  check_unary(
      k(), ref(), &ElementwiseKernels::exp, "exp (ulp)", -104.0f, 89.0f,
      [](double d) { return std::exp(d); }, ulp_scale, 3.0, 4.0);
}

TEST_P(ElementwiseKernelTest, TanhWithinFewUlps) {
  // Cephes' odd polynomial is ~1 ulp below 0.625; above it (1 - e) / (1 + e)
  // adds the exp's error scaled by 2e / (1 - e^2) < 0.6 plus two roundings.
  check_unary(
      k(), ref(), &ElementwiseKernels::tanh, "tanh (ulp)", -12.0f, 12.0f,
      [](double d) { return std::tanh(d); }, ulp_scale, 4.0, 5.0);
}

TEST_P(ElementwiseKernelTest, GeluErfMatchesDefinition) {
  // erf to ~1 ulp (Juffa's polynomials), times 0.5 x: one more rounding
  // each for the product and the sum 1 + erf: 3 eps * |x| bounds it.
  const auto truth = [](double d) {
    return gelu_at_neg_inf_or(d, 0.5 * d * std::erfc(-d / std::sqrt(2.0)));
  };
  check_unary(k(), ref(), &ElementwiseKernels::gelu_erf, "gelu(erf) (eps*|x|)", -10.0f, 10.0f,
              truth, gelu_scale, 3.0, 4.0);
}

TEST_P(ElementwiseKernelTest, GeluTanhMatchesDefinition) {
  // exp within 3 ulps, then 1 + e, the division and the argument's own
  // roundings (u carries ~3 roundings, amplified by GELU's slope <= 1.13).
  const auto truth = [](double d) {
    const double u = std::sqrt(2.0 / M_PI) * (d + 0.044715 * d * d * d);
    return gelu_at_neg_inf_or(d, d / (1.0 + std::exp(-2.0 * u)));
  };
  check_unary(k(), ref(), &ElementwiseKernels::gelu_tanh, "gelu(tanh) (eps*|x|)", -10.0f, 10.0f,
              truth, gelu_scale, 6.0, 8.0);
}

TEST_P(ElementwiseKernelTest, EveryTailLengthAndOffsetInPlace) {
  // Lengths around one and two vectors (8 and 16 lanes) at unaligned
  // starts, computed in place: every element must equal the same value
  // computed in a long aligned run (lanes are independent).
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> base(64);
  for (float& v : base) v = normal(rng);
  for (UnaryF32Fn f : {k().exp, k().tanh, k().gelu_erf, k().gelu_tanh}) {
    const std::vector<float> whole = run_kernel(f, base);
    for (std::size_t offset = 0; offset < 3; ++offset) {
      for (std::size_t n = 0; n <= 35; ++n) {
        std::vector<float> buf(base.begin(), base.end());
        f(buf.data() + offset, buf.data() + offset, n);
        for (std::size_t i = 0; i < buf.size(); ++i) {
          const bool inside = i >= offset && i < offset + n;
          ASSERT_EQ(buf[i], inside ? whole[i] : base[i]) << "n " << n << " offset " << offset;
        }
      }
    }
  }
}

TEST_P(ElementwiseKernelTest, SoftmaxRowsMatchReference) {
  std::mt19937_64 rng(11);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  for (std::size_t n : {1, 2, 7, 8, 9, 15, 16, 17, 33, 128, 515}) {
    const std::size_t rows = 3;
    std::vector<float> x(rows * n), bias(n);
    for (float& v : x) v = normal(rng);
    for (std::size_t j = 0; j < n; ++j)
      bias[j] = j % 3 == 2 ? std::numeric_limits<float>::lowest() : 0.5f;
    std::vector<float> want = x, got = x;
    ref().softmax_rows(want.data(), rows, n, 0.125f, bias.data());
    k().softmax_rows(got.data(), rows, n, 0.125f, bias.data());
    for (std::size_t i = 0; i < x.size(); ++i) {
      // exp within 3 ulps, the normalising sum in double on both sides, one
      // rounding for the product: 6 ulps of the probability.
      EXPECT_NEAR(got[i], want[i], 6 * ulp(want[i])) << "n " << n << " i " << i;
      // A masked key (bias = lowest float) must get exactly zero weight.
      if (i % n % 3 == 2) {
        EXPECT_EQ(got[i], 0.0f) << "n " << n << " i " << i;
      }
    }
    // Without a bias and scale 1 (the Softmax operator).
    want = x;
    got = x;
    ref().softmax_rows(want.data(), rows, n, 1.0f, nullptr);
    k().softmax_rows(got.data(), rows, n, 1.0f, nullptr);
    double row_sum = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      EXPECT_NEAR(got[i], want[i], 6 * ulp(want[i])) << "n " << n << " i " << i;
      if (i < n) row_sum += got[i];
    }
    // n probabilities each within a few ulps of ones that sum to 1.
    EXPECT_NEAR(row_sum, 1.0, 1e-6 + 6 * n * FLT_EPSILON);
  }
  // A row of -inf gives NaN, as PyTorch (and the reference).
  std::vector<float> all_masked(9, -kInf);
  k().softmax_rows(all_masked.data(), 1, all_masked.size(), 1.0f, nullptr);
  for (float v : all_masked) EXPECT_TRUE(std::isnan(v));
}

TEST_P(ElementwiseKernelTest, LayerNormRowsMatchReference) {
  std::mt19937_64 rng(13);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (std::size_t n : {1, 3, 8, 9, 16, 31, 64, 768, 771}) {
    const std::size_t rows = 4;
    std::vector<float> x(rows * n), weight(n), bias(n);
    // A large common offset: the two-pass double statistics must not lose
    // the small deviations to it.
    for (float& v : x) v = 1000.0f + normal(rng);
    for (float& v : weight) v = 1.0f + 0.1f * normal(rng);
    for (float& v : bias) v = 0.1f * normal(rng);
    std::vector<float> want(x.size()), got(x.size());
    ref().layer_norm_rows({x.data(), want.data(), rows, n, weight.data(), bias.data(), 1e-5f});
    k().layer_norm_rows({x.data(), got.data(), rows, n, weight.data(), bias.data(), 1e-5f});
    for (std::size_t i = 0; i < x.size(); ++i) {
      // Both compute in double (the sums' order differs: lanes) and round
      // once to float: within one ulp of each other.
      EXPECT_NEAR(got[i], want[i], ulp(std::max(1e-3f, std::abs(want[i]))))
          << "n " << n << " i " << i;
    }
    // In place gives the same values.
    std::vector<float> in_place = x;
    k().layer_norm_rows(
        {in_place.data(), in_place.data(), rows, n, weight.data(), bias.data(), 1e-5f});
    EXPECT_EQ(in_place, got);
  }
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(ElementwiseKernelTest);

}  // namespace
}  // namespace sparq::detail
