// sparq::apply_stage: the output stages on a caller's int32 block give the
// same bits as gemm() with that stage, on every ISA of the host (the stage
// kernels are per ISA); strided blocks; and the argument errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "kernels/gemm_test_support.hpp"
#include "sparq/error.hpp"
#include "sparq/gemm/gemm.hpp"
#include "support/isa_param.hpp"

namespace sparq {
namespace {

using testing::IsaTest;

class ApplyStage : public IsaTest {};

struct Case {
  int64_t m, n, k;
};

TEST_P(ApplyStage, SameBitsAsTheGemmStages) {
  std::mt19937 rng(5);
  for (const Case& cs : {Case{1, 1, 4}, Case{7, 65, 33}, Case{13, 130, 257}}) {
    const auto [m, n, k] = cs;
    SCOPED_TRACE(::testing::Message() << "m " << m << " n " << n << " k " << k);
    const auto a = testing::random_bytes<uint8_t>(static_cast<std::size_t>(m * k), rng);
    const auto w = testing::random_bytes<int8_t>(static_cast<std::size_t>(n * k), rng);
    std::vector<float> scales(static_cast<std::size_t>(n));
    std::uniform_real_distribution<float> sd(0.001f, 0.02f);
    for (float& s : scales) s = sd(rng);
    const PackedWeights pw = pack_weights(w.data(), n, k, WeightLayout::out_in, 0, scales);
    const ActivationsU8 act{a.data(), m, k, 0, 131};

    // The int32 sums, in a block with a wider row stride than n.
    const int64_t ld = n + 3;
    std::vector<int32_t> acc(static_cast<std::size_t>(m * ld), 0);
    gemm(act, pw, Int32Output{}, acc.data(), ld);

    RequantizeStage rq;
    std::uniform_int_distribution<int32_t> mult(1 << 29, (1 << 30) - 1),
        shift(-15, -11);  // outputs spread over the u8 range, not all clamped
    for (int64_t j = 0; j < n; ++j) rq.multipliers.push_back({mult(rng), shift(rng)});
    std::uniform_int_distribution<int32_t> bias(-5000, 5000);
    for (int64_t j = 0; j < n; ++j) rq.bias.push_back(bias(rng));
    rq.output_zero_point = 100;
    rq.clamp_min = 100;  // a fused ReLU
    rq.clamp_max = 255;
    std::vector<uint8_t> want_u8(static_cast<std::size_t>(m * n)), got_u8(want_u8.size());
    gemm(act, pw, rq, want_u8.data());
    apply_stage(acc.data(), m, n, ld, rq, got_u8.data());
    EXPECT_EQ(got_u8, want_u8);

    RequantizeStage rs = rq;
    rs.output_zero_point = -3;
    rs.clamp_min = -128;
    rs.clamp_max = 127;
    std::vector<int8_t> want_s8(static_cast<std::size_t>(m * n)), got_s8(want_s8.size());
    gemm(act, pw, rs, want_s8.data());
    apply_stage(acc.data(), m, n, ld, rs, got_s8.data());
    EXPECT_EQ(got_s8, want_s8);

    DequantizeStage dq;
    dq.activation_scale = 0.037f;
    for (int64_t j = 0; j < n; ++j) dq.bias.push_back(0.01f * static_cast<float>(j % 7) - 0.03f);
    dq.relu = true;
    std::vector<float> want_f(static_cast<std::size_t>(m * n)), got_f(want_f.size());
    gemm(act, pw, dq, want_f.data());
    apply_stage(acc.data(), m, n, ld, pw.scales(), dq, got_f.data());
    EXPECT_EQ(got_f, want_f);  // bit for bit: the same kernel on the same sums
  }
}

// Per-row activation scales (per-token): row i of the dequantizing stage
// equals the same GEMM with activation_scale = activation_scales[i], bit for
// bit, in gemm() and in apply_stage.
TEST_P(ApplyStage, PerRowActivationScales) {
  std::mt19937 rng(9);
  const int64_t m = 11, n = 70, k = 45;
  const auto a = testing::random_bytes<uint8_t>(static_cast<std::size_t>(m * k), rng);
  const auto w = testing::random_bytes<int8_t>(static_cast<std::size_t>(n * k), rng);
  const std::vector<float> scales(static_cast<std::size_t>(n), 0.0125f);
  const PackedWeights pw = pack_weights(w.data(), n, k, WeightLayout::out_in, 0, scales);
  DequantizeStage per_row;
  std::uniform_real_distribution<float> sd(0.001f, 0.1f);
  for (int64_t i = 0; i < m; ++i) per_row.activation_scales.push_back(sd(rng));
  per_row.bias.assign(static_cast<std::size_t>(n), 0.25f);
  std::vector<float> got(static_cast<std::size_t>(m * n));
  gemm(ActivationsU8{a.data(), m, k, 0, 9}, pw, per_row, got.data());
  std::vector<int32_t> acc(got.size());
  gemm(ActivationsU8{a.data(), m, k, 0, 9}, pw, Int32Output{}, acc.data());
  std::vector<float> staged(got.size());
  apply_stage(acc.data(), m, n, 0, pw.scales(), per_row, staged.data());
  EXPECT_EQ(staged, got);
  for (int64_t i = 0; i < m; ++i) {
    DequantizeStage one;
    one.activation_scale = per_row.activation_scales[static_cast<std::size_t>(i)];
    one.bias = per_row.bias;
    std::vector<float> row(static_cast<std::size_t>(n));
    gemm(ActivationsU8{a.data() + i * k, 1, k, 0, 9}, pw, one, row.data());
    EXPECT_TRUE(std::equal(row.begin(), row.end(), got.begin() + i * n)) << "row " << i;
  }
  DequantizeStage wrong = per_row;
  wrong.activation_scales.pop_back();  // m - 1 values
  EXPECT_THROW(gemm(ActivationsU8{a.data(), m, k, 0, 9}, pw, wrong, got.data()), Error);
}

TEST(ApplyStageErrors, BadArgumentsThrow) {
  const std::vector<int32_t> acc(8, 1);
  std::vector<uint8_t> out(8);
  RequantizeStage rq;
  rq.multipliers = {{1 << 30, -1}};
  rq.clamp_min = 0;
  rq.clamp_max = 255;
  EXPECT_THROW(apply_stage(acc.data(), 2, 4, 3, rq, out.data()), Error);   // ld_acc < n
  EXPECT_THROW(apply_stage(acc.data(), -1, 4, 0, rq, out.data()), Error);  // m < 0
  EXPECT_THROW(apply_stage(nullptr, 2, 4, 0, rq, out.data()), Error);
  EXPECT_THROW(apply_stage(acc.data(), 2, 4, 0, rq, static_cast<uint8_t*>(nullptr)), Error);
  RequantizeStage bad = rq;
  bad.multipliers.assign(3, {1 << 30, -1});  // neither 1 nor n values
  EXPECT_THROW(apply_stage(acc.data(), 2, 4, 0, bad, out.data()), Error);
  std::vector<float> f(8);
  const std::vector<float> two_scales(2, 1.0f);
  EXPECT_THROW(apply_stage(acc.data(), 2, 4, 0, two_scales, DequantizeStage{}, f.data()), Error);
  apply_stage(acc.data(), 0, 4, 0, rq, out.data());  // empty blocks are fine
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(ApplyStage);

}  // namespace
}  // namespace sparq
