// The residual input of the requantizing stage (gemm.hpp, ResidualInput):
// bit-exact against the documented formula on every ISA of the host, for u8
// and s8 residuals and outputs, per-tensor and per-channel residual
// multipliers, strided residuals, K beyond the int32 chunk (the int64 path),
// through apply_stage too; and its argument errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>
#include <vector>

#include "kernels/gemm_test_support.hpp"
#include "sparq/error.hpp"
#include "sparq/gemm/gemm.hpp"
#include "support/isa_param.hpp"

namespace sparq {
namespace {

using testing::IsaTest;

int32_t sat32(int64_t v) {
  return static_cast<int32_t>(std::clamp<int64_t>(v, std::numeric_limits<int32_t>::min(),
                                                  std::numeric_limits<int32_t>::max()));
}

/// The documented stage: acc' = sat32(acc + bias[n] + MBQM(r - zp_r, rm[n])),
/// then requantize(acc').
template <class R>
int32_t reference(int64_t acc, R r, const RequantizeStage& s, int64_t j) {
  const QuantizedMultiplier rm =
      s.residual.multipliers.size() == 1 ? s.residual.multipliers[0] : s.residual.multipliers[j];
  const int64_t res = multiply_by_quantized_multiplier(int32_t{r} - s.residual.zero_point, rm);
  const QuantizedMultiplier m = s.multipliers.size() == 1 ? s.multipliers[0] : s.multipliers[j];
  return requantize(sat32(acc + s.bias[static_cast<std::size_t>(j)] + res), m, s.output_zero_point,
                    s.clamp_min, s.clamp_max);
}

struct Case {
  int64_t m, n, k;
  bool signed_residual, signed_out, per_channel_residual;
};

class ResidualStage : public IsaTest {};

template <class Out, class R>
void check(const Case& cs, std::mt19937& rng) {
  const auto [m, n, k, sr, so, pc] = cs;
  SCOPED_TRACE(::testing::Message() << "m " << m << " n " << n << " k " << k << " s8 residual "
                                    << sr << " s8 out " << so << " per-channel " << pc);
  const auto a = testing::random_bytes<uint8_t>(static_cast<std::size_t>(m * k), rng);
  const auto w = testing::random_bytes<int8_t>(static_cast<std::size_t>(n * k), rng);
  const PackedWeights pw = pack_weights(w.data(), n, k, WeightLayout::out_in);
  const int32_t zp_a = 77;
  const std::vector<int64_t> sums = testing::reference_gemm(a.data(), m, k, k, zp_a, w.data(), n);

  const int64_t ld_r = n + 5;
  const auto r = testing::random_bytes<R>(static_cast<std::size_t>(m * ld_r), rng);
  RequantizeStage s;
  // Output steps of ~2^-(14..17) accumulator units for K ~ 100 (sums of
  // ~1e6): values spread over the output range; for the long-K case the
  // larger sums saturate some outputs, which the reference does too.
  std::uniform_int_distribution<int32_t> mult(1 << 30, std::numeric_limits<int32_t>::max());
  std::uniform_int_distribution<int> shift(-17, -14);
  for (int64_t j = 0; j < n; ++j) s.multipliers.push_back({mult(rng), shift(rng)});
  std::uniform_int_distribution<int32_t> bias(-20000, 20000);
  for (int64_t j = 0; j < n; ++j) s.bias.push_back(bias(rng));
  s.output_zero_point = so ? 5 : 120;
  s.clamp_min = so ? -128 : 120;  // u8: a fused ReLU after the add
  s.clamp_max = so ? 127 : 255;
  s.residual.data = r.data();
  s.residual.is_signed = sr;
  s.residual.ld = ld_r;
  s.residual.zero_point = sr ? -9 : 131;
  // Residual scale / accumulator scale: typically hundreds to thousands (a
  // left shift); one per tensor or one per channel.
  std::uniform_real_distribution<double> ratio(200.0, 5000.0);
  const int64_t nres = pc ? n : 1;
  for (int64_t j = 0; j < nres; ++j)
    s.residual.multipliers.push_back(quantize_multiplier(ratio(rng)));

  std::vector<Out> got(static_cast<std::size_t>(m * n)), want(got.size());
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      want[static_cast<std::size_t>(i * n + j)] =
          static_cast<Out>(reference(sums[static_cast<std::size_t>(i * n + j)],
                                     r[static_cast<std::size_t>(i * ld_r + j)], s, j));
    }
  }
  gemm(ActivationsU8{a.data(), m, k, 0, zp_a}, pw, s, got.data());
  EXPECT_EQ(got, want) << "gemm";

  if (k <= 4096) {  // apply_stage takes int32 sums: only where they fit
    std::vector<int32_t> acc(sums.begin(), sums.end());
    std::vector<Out> staged(got.size());
    apply_stage(acc.data(), m, n, 0, s, staged.data());
    EXPECT_EQ(staged, want) << "apply_stage";
  }
}

TEST_P(ResidualStage, MatchesTheDocumentedFormula) {
  std::mt19937 rng(17);
  const Case cases[] = {
      {1, 1, 4, false, false, false},  {5, 67, 129, false, false, true},
      {9, 130, 64, true, false, true}, {3, 17, 100, false, true, false},
      {7, 64, 33, true, true, true},   {2, 3, 65800, false, false, true},
  };
  for (const Case& cs : cases) {
    if (cs.signed_out) {
      cs.signed_residual ? check<int8_t, int8_t>(cs, rng) : check<int8_t, uint8_t>(cs, rng);
    } else {
      cs.signed_residual ? check<uint8_t, int8_t>(cs, rng) : check<uint8_t, uint8_t>(cs, rng);
    }
  }
}

// acc + bias overflows int32 but acc + bias + residual does not: the stage
// saturates once, the sum of all three (a kernel that saturated acc + bias
// first would give INT32_MAX + residual). Columns 0-16 cover a full SIMD
// block and a tail; row 1 is the negative mirror.
TEST_P(ResidualStage, TheSumSaturatesOnce) {
  const int64_t n = 17;
  RequantizeStage s;
  s.multipliers = {quantize_multiplier(1.0 / (1 << 24))};
  s.bias.assign(n, 500000000);
  s.output_zero_point = 0;
  s.clamp_min = -128;
  s.clamp_max = 127;
  s.residual.zero_point = 0;
  s.residual.is_signed = true;
  s.residual.multipliers = {quantize_multiplier(600000000.0 / 127.0)};
  std::vector<int8_t> r(2 * n);
  std::vector<int32_t> acc(2 * n);
  for (int64_t j = 0; j < n; ++j) {
    acc[j] = 2000000000 - static_cast<int32_t>(j) * 1000;  // + bias: > INT32_MAX
    r[j] = -127;                                           // about -6e8
    acc[n + j] = -2000000000 + static_cast<int32_t>(j) * 1000;
    r[n + j] = 127;
  }
  s.residual.data = r.data();
  std::vector<int8_t> got(2 * n), want(2 * n);
  RequantizeStage neg = s;  // row 1: bias -5e8, so acc + bias < INT32_MIN
  neg.bias.assign(n, -500000000);
  for (int64_t j = 0; j < n; ++j) {
    want[j] = static_cast<int8_t>(reference(acc[j], r[j], s, j));
    want[n + j] = static_cast<int8_t>(reference(acc[n + j], r[n + j], neg, j));
  }
  apply_stage(acc.data(), 1, n, n, s, got.data());
  neg.residual.data = r.data() + n;
  apply_stage(acc.data() + n, 1, n, n, neg, got.data() + n);
  EXPECT_EQ(got, want);
  // The expected values are not the saturated ones: the residual counted.
  EXPECT_LT(want[0], 127);
  EXPECT_GT(want[n], -128);
}

TEST(ResidualStageErrors, BadArgumentsThrow) {
  const std::vector<int8_t> w(8 * 4, 1);
  const PackedWeights pw = pack_weights(w.data(), 8, 4, WeightLayout::out_in);
  const std::vector<uint8_t> a(2 * 4, 1), r(2 * 8, 1);
  std::vector<uint8_t> out(2 * 8);
  RequantizeStage s;
  s.multipliers = {{1 << 30, -1}};
  s.clamp_min = 0;
  s.clamp_max = 255;
  s.residual.data = r.data();
  s.residual.multipliers = {{1 << 30, 3}};
  const ActivationsU8 act{a.data(), 2, 4, 0, 0};
  gemm(act, pw, s, out.data());  // valid
  RequantizeStage bad = s;
  bad.residual.zero_point = 256;
  EXPECT_THROW(gemm(act, pw, bad, out.data()), Error);
  bad = s;
  bad.residual.ld = 7;  // < n
  EXPECT_THROW(gemm(act, pw, bad, out.data()), Error);
  bad = s;
  bad.residual.multipliers.assign(3, {1 << 30, 3});  // neither 1 nor n
  EXPECT_THROW(gemm(act, pw, bad, out.data()), Error);
  bad = s;
  bad.residual.multipliers = {{1 << 30, 31}};  // shift out of range
  EXPECT_THROW(gemm(act, pw, bad, out.data()), Error);
  bad = s;
  bad.residual.data = nullptr;  // multipliers without data
  EXPECT_THROW(gemm(act, pw, bad, out.data()), Error);
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(ResidualStage);

}  // namespace
}  // namespace sparq
