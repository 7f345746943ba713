// The AMX tile kernel on every host: the same kernel source as
// src/kernels/amx/, built against the tile emulation (reference/...__amxemu),
// run through the whole GEMM (pack_weights, driver, threads, K chunks,
// output stages) with the table override, bit-exact against the int64
// reference. On a host with real AMX the per-ISA suites (gemm_int32_test,
// gemm_output_stages_test, ...) run Isa::amx itself; the microkernel-level
// test below also runs the real kernel there.
//
// Shapes: rows 1..2*MR+1 (one and two 16-row A tiles, partial tiles),
// columns 1..2*NR+1 (one and two 32-column halves), K below / at / above 64
// (the tile step) and around powers of two, K across the int32 chunk, odd
// leading dimensions, extreme zero points and values, u8 and s8 activations.
#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/gemm_kernels.hpp"
#include "kernels/gemm_test_support.hpp"
#include "sparq/gemm/gemm.hpp"
#include "sparq/isa.hpp"

namespace sparq {
namespace {

using testing::random_bytes;
using testing::reference_gemm;

// The tables to test at the microkernel level: the emulated one always, the
// real one where the host runs it.
std::vector<const detail::GemmKernels*> tile_tables() {
  std::vector<const detail::GemmKernels*> t = {&detail::gemm_kernels_amx_emulated()};
  if (isa_supported(Isa::amx)) t.push_back(&detail::gemm_kernels(Isa::amx));
  return t;
}

// Isa::amx in dispatch: its name, its place above avx512vnni, the reason
// `sparq info` gives, and the per-call kernel choice by M.
TEST(AmxDispatch, NameStatusAndPerCallChoice) {
  EXPECT_EQ(isa_name(Isa::amx), "amx");
  EXPECT_EQ(parse_isa("amx"), Isa::amx);
  const std::string& status = cpu_info().amx;
  EXPECT_FALSE(status.empty());
  if (status != "usable") {
    EXPECT_FALSE(isa_supported(Isa::amx)) << status;
  }
  if (!isa_supported(Isa::amx)) GTEST_SKIP() << "no AMX here (" << status << ")";
  EXPECT_EQ(status, "usable");
  EXPECT_EQ(best_isa(), Isa::amx);
  const detail::GemmKernels& amx = detail::gemm_kernels(Isa::amx);
  ASSERT_NE(amx.small_m, nullptr);
  EXPECT_EQ(&detail::gemm_kernels_for(Isa::amx, amx.small_m_below - 1), amx.small_m);
  EXPECT_EQ(&detail::gemm_kernels_for(Isa::amx, amx.small_m_below), &amx);
  EXPECT_TRUE(detail::layout_compatible(*amx.small_m, amx.nr, amx.kr));
}

// Microkernel contract (gemm_kernels.hpp) straight on the kernel, with
// buffers of exactly the contract's size (so a read past them is caught by
// the sanitizer build, also through the emulation's loads).
TEST(AmxUkernel, ContractOnEveryRowColumnAndTailCount) {
  std::mt19937 rng(5);
  for (const detail::GemmKernels* kern : tile_tables()) {
    SCOPED_TRACE(kern->ukernel_name);
    ASSERT_EQ(kern->nr, 64);
    ASSERT_EQ(kern->kr, 4);
    const int nrs[] = {1, 15, 16, 17, 31, 32, 33, 48, 63, 64};
    for (int64_t kp : {4, 8, 60, 64, 68, 124, 128, 132, 192, 260}) {
      for (int mr = 1; mr <= kern->mr; ++mr) {
        // Every column count for the row counts at the tile edges, one
        // (rotating) for the others: the emulation is slow.
        const bool edge = mr == 1 || mr == 16 || mr == 17 || mr == kern->mr;
        for (int idx = 0; idx < 10; ++idx) {
          if (!edge && idx != (mr + kp / 4) % 10) continue;
          const int nr = nrs[idx];
          const auto a_rows = random_bytes<uint8_t>(static_cast<std::size_t>(mr * kp), rng);
          const auto w = random_bytes<int8_t>(static_cast<std::size_t>(64 * kp), rng);  // [n][k]
          std::vector<uint8_t> a_packed(static_cast<std::size_t>(mr * kp));
          detail::GemmPackAParams pa;
          pa.a = a_rows.data();
          pa.lda = kp;
          pa.k = kp;
          pa.kp = kp;
          pa.mr = mr;
          pa.kr = kern->kr;
          pa.dst = a_packed.data();
          kern->pack_a(pa);
          std::vector<int8_t> panel(static_cast<std::size_t>(64 * kp));
          std::vector<int32_t> col_sums(64);
          for (int j = 0; j < 64; ++j) {
            for (int64_t k = 0; k < kp; ++k) {
              const int8_t v = w[static_cast<std::size_t>(j * kp + k)];
              panel[static_cast<std::size_t>((k / 4) * 256 + j * 4 + k % 4)] = v;
              col_sums[static_cast<std::size_t>(j)] += v;
            }
          }
          std::vector<int32_t> zp(static_cast<std::size_t>(mr));
          for (int i = 0; i < mr; ++i) zp[static_cast<std::size_t>(i)] = (i * 37) % 256;
          for (bool compensate : {false, true}) {
            const int64_t ldc = nr + 3;
            std::vector<int32_t> c(static_cast<std::size_t>(mr * ldc), -7);
            detail::GemmUkernelParams u;
            u.a = a_packed.data();
            u.w = panel.data();
            u.kp = kp;
            u.mr = mr;
            u.nr = nr;
            u.c = c.data();
            u.ldc = ldc;
            u.a_zero_point = zp.data();
            u.col_sums = compensate ? col_sums.data() : nullptr;
            kern->ukernel(u);
            for (int i = 0; i < mr; ++i) {
              for (int64_t j = 0; j < ldc; ++j) {
                const int32_t got = c[static_cast<std::size_t>(i * ldc + j)];
                if (j >= nr) {
                  ASSERT_EQ(got, -7) << "wrote past nr: mr=" << mr << " nr=" << nr;
                  continue;
                }
                int64_t want = 0;
                for (int64_t k = 0; k < kp; ++k) {
                  want += int64_t{a_rows[static_cast<std::size_t>(i * kp + k)]} *
                          w[static_cast<std::size_t>(j * kp + k)];
                }
                if (compensate) want -= int64_t{zp[static_cast<std::size_t>(i)]} * col_sums[j];
                ASSERT_EQ(got, want) << "mr=" << mr << " nr=" << nr << " kp=" << kp << " at (" << i
                                     << ", " << j << ") compensate=" << compensate;
              }
            }
          }
        }
      }
    }
  }
}

// The k64 activation packing: [kp/64][mr][64] then [mr][kp%64], shifted,
// zero-padded beyond k.
TEST(AmxUkernel, PackAK64Layout) {
  std::mt19937 rng(8);
  for (int64_t k : {1, 3, 63, 64, 65, 130}) {
    const int64_t kp = (k + 3) / 4 * 4;
    for (int mr : {1, 5, 32}) {
      const int64_t lda = k + 2;
      const auto a = random_bytes<uint8_t>(static_cast<std::size_t>(mr * lda), rng);
      for (uint8_t shift : {uint8_t{0}, uint8_t{128}}) {
        std::vector<uint8_t> dst(static_cast<std::size_t>(mr * kp), 0xEE);
        detail::GemmPackAParams p{a.data(), lda, k, kp, mr, 4, shift, dst.data()};
        detail::gemm_pack_a_k64__scalar(p);
        for (int i = 0; i < mr; ++i) {
          for (int64_t kk = 0; kk < kp; ++kk) {
            const int64_t g = kk / 64;
            const int64_t width = std::min<int64_t>(64, kp - g * 64);
            const auto at = static_cast<std::size_t>(g * 64 * mr + i * width + kk % 64);
            const uint8_t want =
                kk < k ? static_cast<uint8_t>(a[static_cast<std::size_t>(i * lda + kk)] + shift)
                       : uint8_t{0};
            ASSERT_EQ(dst[at], want) << "k=" << k << " mr=" << mr << " (" << i << ", " << kk << ")";
          }
        }
      }
    }
  }
}

// The whole GEMM through the emulated table.
class AmxEmulatedGemm : public ::testing::Test {
 protected:
  template <class T>
  void check(int64_t m, int64_t n, int64_t k, int32_t zp, int64_t lda_extra = 0,
             int64_t ldc_extra = 0, int threads = 1) {
    testing::check_int32_gemm<T>(rng_, m, n, k, zp, lda_extra, ldc_extra, threads);
  }

  const detail::GemmKernels& kern_ = detail::gemm_kernels_amx_emulated();
  detail::ScopedGemmKernelsOverride use_{kern_};
  std::mt19937 rng_{1234};
};

TEST_F(AmxEmulatedGemm, TheOverrideIsInEffect) {
  EXPECT_EQ(&detail::gemm_kernels(active_isa()), &kern_);
  EXPECT_EQ(&detail::gemm_kernels_for(active_isa(), 1), &kern_);
  const std::vector<int8_t> w(64, 1);
  EXPECT_EQ(pack_weights(w.data(), 4, 16, WeightLayout::out_in).isa(), Isa::amx);
}

TEST_F(AmxEmulatedGemm, RowsAroundTheTile) {
  for (int64_t m = 1; m <= 2 * kern_.mr + 1; ++m) check<uint8_t>(m, 17, 37, 3);
}

TEST_F(AmxEmulatedGemm, ColumnsAroundThePanel) {
  for (int64_t n = 1; n <= 2 * kern_.nr + 1; ++n) check<uint8_t>(n % 3 + 1, n, 9, 128);
  check<uint8_t>(33, 2 * kern_.nr + 1, 70, 7);
}

TEST_F(AmxEmulatedGemm, DepthsAroundTheStepAndPowersOfTwo) {
  for (int64_t k :
       {1, 2, 3, 4, 5, 7, 8, 31, 60, 63, 64, 65, 68, 127, 128, 129, 255, 256, 257, 1021}) {
    check<uint8_t>(5, 19, k, 255);
    check<int8_t>(3, 70, k, -128);
    check<uint8_t>(20, 40, k, 0);
    check<int8_t>(32, 65, k, 127);
  }
}

TEST_F(AmxEmulatedGemm, MixedShapes) {
  const int mr = kern_.mr;
  const int nr = kern_.nr;
  for (int64_t m : {int64_t{1}, int64_t{15}, int64_t{16}, int64_t{17}, int64_t{mr - 1}, int64_t{mr},
                    int64_t{mr + 1}, int64_t{2 * mr + 3}}) {
    for (int64_t n : {int64_t{1}, int64_t{nr - 1}, int64_t{nr}, int64_t{nr + 1}, int64_t{131}}) {
      check<uint8_t>(m, n, 61, 1);
      check<int8_t>(m, n, 200, -1);
    }
  }
}

TEST_F(AmxEmulatedGemm, LeadingDimensions) {
  check<uint8_t>(7, 33, 29, 0, 3, 5);
  check<int8_t>(7, 33, 29, 5, 64, 1);
  check<uint8_t>(13, 65, 128, 127, 1, 0);
  check<uint8_t>(45, 97, 131, 200, 7, 9);
}

TEST_F(AmxEmulatedGemm, ZeroPoints) {
  for (int32_t zp : {0, 1, 127, 128, 255}) check<uint8_t>(18, 40, 100, zp);
  for (int32_t zp : {-128, -127, -1, 0, 1, 127}) check<int8_t>(18, 40, 100, zp);
}

TEST_F(AmxEmulatedGemm, ThreadCountsGiveIdenticalResults) { testing::check_thread_counts(rng_); }

TEST_F(AmxEmulatedGemm, ExtremeValuesNeverSaturate) { testing::check_extreme_values(19); }

TEST_F(AmxEmulatedGemm, DepthAtTheInt32Bound) {
  for (int64_t k : {detail::kMaxKChunk - 1, detail::kMaxKChunk, detail::kMaxKChunk + 1,
                    detail::kMaxKChunk + 5, 2 * detail::kMaxKChunk + 7}) {
    check<uint8_t>(2, 5, k, 77);
    check<int8_t>(17, 3, k, -128);
  }
}

TEST_F(AmxEmulatedGemm, PackedWeightsServeOtherTables) {
  // Packed under the override (the avx512vnni layout, nr 64 / kr 4) and
  // run after it: a table of the same layout reads them as they are, any
  // other repacks; either way the same result.
  const int64_t m = 20, n = 70, k = 100;
  const auto a = random_bytes<uint8_t>(static_cast<std::size_t>(m * k), rng_);
  const auto w = random_bytes<int8_t>(static_cast<std::size_t>(n * k), rng_);
  const PackedWeights packed = pack_weights(w.data(), n, k, WeightLayout::out_in);
  std::vector<int32_t> c1(static_cast<std::size_t>(m * n)), c2(c1.size());
  gemm(ActivationsU8{a.data(), m, k, 0, 3}, packed, Int32Output{}, c1.data());
  {
    // Another table for this block (the scalar one: another layout, so
    // the driver repacks).
    detail::ScopedGemmKernelsOverride host(detail::gemm_kernels(Isa::scalar));
    gemm(ActivationsU8{a.data(), m, k, 0, 3}, packed, Int32Output{}, c2.data());
  }
  EXPECT_EQ(c1, c2);
}

TEST_F(AmxEmulatedGemm, RequantizedAndDequantizedStages) {
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1},
                         {7, 70, 33},
                         {13, 129, 260},
                         {40, 65, 64}}) {
    const auto a = random_bytes<int8_t>(static_cast<std::size_t>(m * k), rng_);
    const auto w = random_bytes<int8_t>(static_cast<std::size_t>(n * k), rng_);
    std::vector<float> scales(static_cast<std::size_t>(n));
    for (int64_t j = 0; j < n; ++j) scales[static_cast<std::size_t>(j)] = 0.001f * (1 + j % 7);
    const PackedWeights packed = pack_weights(w.data(), n, k, WeightLayout::out_in, 0, scales);
    testing::check_requantized_gemm(a, w, packed, m, n, k);
    const int32_t zp_a = -5;
    // Dequantized: the emulated table's stage is the scalar one, so the
    // floats must equal the scalar ISA's bit for bit (one float product of
    // the scales, one fma, on identical int32 sums).
    DequantizeStage ds;
    ds.activation_scale = 0.0173f;
    for (int64_t j = 0; j < n; ++j) ds.bias.push_back(0.25f * static_cast<float>(j % 9) - 1.0f);
    for (bool relu : {false, true}) {
      ds.relu = relu;
      std::vector<float> cf(static_cast<std::size_t>(m * n)), cs(cf.size());
      gemm(ActivationsS8{a.data(), m, k, 0, zp_a}, packed, ds, cf.data());
      {
        detail::ScopedGemmKernelsOverride scalar(detail::gemm_kernels(Isa::scalar));
        gemm(ActivationsS8{a.data(), m, k, 0, zp_a}, packed, ds, cs.data());
      }
      ASSERT_EQ(cf, cs) << "m=" << m << " n=" << n << " k=" << k << " relu=" << relu;
    }
  }
}

TEST_F(AmxEmulatedGemm, StagesOnTheSplitKPath) { testing::check_stages_on_split_k(); }

}  // namespace
}  // namespace sparq
