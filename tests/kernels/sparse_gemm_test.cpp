// 2:4 sparse GEMM: bit-exact against the dense GEMM on the same pruned
// weights and against an int64 reference, for every ISA of the host, both
// paths (direct, expand), tails in M, N and K, u8/s8 activations, every
// output stage, K chunking, threads, repacking, and the packed size.
#include <gtest/gtest.h>

#include "dispatch/cache_info.hpp"

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/gemm_test_support.hpp"
#include "kernels/sparse_gemm_kernels.hpp"
#include "sparq/detail/packed_sparse_weights_data.hpp"
#include "sparq/gemm/sparse_gemm.hpp"
#include "sparq/sparse/compressed.hpp"
#include "support/isa_param.hpp"

namespace sparq {
namespace {

using testing::random_bytes;
using testing::reference_gemm;

// A random 2:4-pruned [n][k] int8 matrix: each group of 4 keeps 0, 1 or 2
// random positions (mostly 2) with values over the whole int8 range (-128
// included); a partial last group keeps positions inside the real K only.
std::vector<int8_t> random_pruned(int64_t n, int64_t k, std::mt19937& rng) {
  std::vector<int8_t> w(static_cast<std::size_t>(n * k), 0);
  std::uniform_int_distribution<int> val(-128, 127);
  std::uniform_int_distribution<int> pos(0, 3);
  std::uniform_int_distribution<int> keep(0, 9);
  for (int64_t o = 0; o < n; ++o) {
    for (int64_t g = 0; g * 4 < k; ++g) {
      const int kept = keep(rng) == 0 ? 0 : (keep(rng) == 0 ? 1 : 2);
      for (int t = 0; t < kept; ++t) {
        const int64_t kk = g * 4 + pos(rng);
        int v = val(rng);
        if (v == 0) v = 1;
        if (kk < k) w[static_cast<std::size_t>(o * k + kk)] = static_cast<int8_t>(v);
      }
    }
  }
  return w;
}

CompressedNM<int8_t> compress24(const std::vector<int8_t>& w, int64_t n, int64_t k) {
  PruneOptions opt;
  opt.tail = TailPolicy::pad_zeros;
  return compress(w, WeightShape{n, k, WeightLayout::out_in}, opt);
}

constexpr SparsePath kPaths[] = {SparsePath::direct, SparsePath::expand};

class SparseGemm : public sparq::testing::IsaTest {};

struct Shape {
  int64_t m, n, k;
};

TEST_P(SparseGemm, Int32MatchesDenseAndReferenceOnBothPaths) {
  std::mt19937 rng(7);
  // Tails in every dimension: M around the tile heights (4 or 8 direct, 4/6
  // dense), N around the panel widths (8, 16, 64) and the 32-column passes
  // of the 8-row AVX-512 kernel, K around the step (8), the k-group (4), the
  // 64-input activation window and the prefetch distance.
  const Shape shapes[] = {{1, 1, 1},    {1, 8, 8},     {2, 7, 3},      {3, 9, 5},
                          {4, 63, 17},  {5, 64, 16},   {6, 65, 9},     {7, 130, 100},
                          {9, 17, 257}, {13, 129, 64}, {1, 200, 1030}, {20, 70, 36},
                          {8, 32, 520}, {6, 20, 64},   {8, 96, 1088},  {16, 40, 136}};
  for (const Shape& s : shapes) {
    const std::vector<int8_t> w = random_pruned(s.n, s.k, rng);
    const PackedSparseWeights sw = pack_sparse_weights(compress24(w, s.n, s.k));
    const PackedWeights dw = pack_weights(w.data(), s.n, s.k, WeightLayout::out_in);
    EXPECT_EQ(unpack_sparse_weights(sw), w);
    for (bool is_signed : {false, true}) {
      const int64_t lda = s.k + 3;  // odd stride
      const auto bytes = random_bytes<uint8_t>(static_cast<std::size_t>(s.m * lda), rng);
      const int32_t zp = is_signed ? -77 : 201;
      std::vector<int32_t> dense(static_cast<std::size_t>(s.m * s.n));
      std::vector<int64_t> ref;
      if (is_signed) {
        ActivationsS8 a{reinterpret_cast<const int8_t*>(bytes.data()), s.m, s.k, lda, zp};
        gemm(a, dw, Int32Output{}, dense.data());
        ref = reference_gemm(a.data, s.m, s.k, lda, zp, w.data(), s.n);
      } else {
        ActivationsU8 a{bytes.data(), s.m, s.k, lda, zp};
        gemm(a, dw, Int32Output{}, dense.data());
        ref = reference_gemm(a.data, s.m, s.k, lda, zp, w.data(), s.n);
      }
      for (SparsePath path : kPaths) {
        SCOPED_TRACE(::testing::Message()
                     << "m=" << s.m << " n=" << s.n << " k=" << s.k << " signed=" << is_signed
                     << " path=" << sparse_path_name(path));
        // ldc > n: the kernel must not write past its columns.
        const int64_t ldc = s.n + 5;
        std::vector<int32_t> c(static_cast<std::size_t>(s.m * ldc), -1);
        SparseGemmOptions o;
        o.path = path;
        SparsePath ran;
        if (is_signed) {
          ran =
              gemm(ActivationsS8{reinterpret_cast<const int8_t*>(bytes.data()), s.m, s.k, lda, zp},
                   sw, Int32Output{}, c.data(), ldc, o);
        } else {
          ran = gemm(ActivationsU8{bytes.data(), s.m, s.k, lda, zp}, sw, Int32Output{}, c.data(),
                     ldc, o);
        }
        // neon (4x4c8) and neoni8mm (kr 8) dense layouts are not what the
        // expand kernels write: a forced expand runs the direct path there.
        const bool can_expand = GetParam() != Isa::neon && GetParam() != Isa::neoni8mm;
        EXPECT_EQ(ran, can_expand ? path : SparsePath::direct);
        for (int64_t i = 0; i < s.m; ++i) {
          for (int64_t j = 0; j < s.n; ++j) {
            ASSERT_EQ(c[static_cast<std::size_t>(i * ldc + j)],
                      dense[static_cast<std::size_t>(i * s.n + j)])
                << i << "," << j;
            ASSERT_EQ(c[static_cast<std::size_t>(i * ldc + j)],
                      ref[static_cast<std::size_t>(i * s.n + j)]);
          }
          for (int64_t j = s.n; j < ldc; ++j)
            ASSERT_EQ(c[static_cast<std::size_t>(i * ldc + j)], -1);
        }
      }
    }
  }
}

// Requantize (u8/s8 out, per tensor and per channel, bias, clamps) and
// dequantize (bias, ReLU) outputs are bytewise equal to the dense gemm's.
TEST_P(SparseGemm, OutputStagesBitIdenticalToDense) {
  std::mt19937 rng(11);
  const Shape shapes[] = {{1, 67, 44}, {5, 130, 72}, {11, 9, 31}};
  for (const Shape& s : shapes) {
    const std::vector<int8_t> w = random_pruned(s.n, s.k, rng);
    std::vector<float> scales(static_cast<std::size_t>(s.n));
    for (auto& x : scales) x = std::uniform_real_distribution<float>(1e-3f, 1e-2f)(rng);
    const PackedSparseWeights sw = pack_sparse_weights(compress24(w, s.n, s.k), scales);
    const PackedWeights dw = pack_weights(w.data(), s.n, s.k, WeightLayout::out_in, 0, scales);
    const auto a8 = random_bytes<int8_t>(static_cast<std::size_t>(s.m * s.k), rng);
    const auto au = random_bytes<uint8_t>(static_cast<std::size_t>(s.m * s.k), rng);
    const ActivationsS8 as{a8.data(), s.m, s.k, 0, -3};
    const ActivationsU8 au8{au.data(), s.m, s.k, 0, 130};
    RequantizeStage rq;
    for (int64_t j = 0; j < s.n; ++j) {
      rq.multipliers.push_back(quantize_multiplier(0.0007 + 0.0001 * static_cast<double>(j % 7)));
      rq.bias.push_back(static_cast<int32_t>(j * 977 % 20001) - 10000);
    }
    rq.output_zero_point = 5;
    rq.clamp_min = -100;
    rq.clamp_max = 120;
    RequantizeStage rq_u8 = rq;
    rq_u8.output_zero_point = 128;
    rq_u8.clamp_min = 3;
    rq_u8.clamp_max = 250;
    RequantizeStage rq_tensor;
    rq_tensor.multipliers = {quantize_multiplier(0.001)};
    DequantizeStage dq;
    dq.activation_scale = 0.02f;
    dq.relu = true;
    for (int64_t j = 0; j < s.n; ++j) dq.bias.push_back(0.01f * static_cast<float>(j % 13) - 0.05f);
    const auto size = static_cast<std::size_t>(s.m * s.n);
    for (SparsePath path : kPaths) {
      SCOPED_TRACE(::testing::Message() << "m=" << s.m << " path=" << sparse_path_name(path));
      const SparseGemmOptions o{0, path};
      std::vector<int8_t> d8(size), s8(size);
      std::vector<uint8_t> du(size), su(size);
      std::vector<float> df(size), sf(size);
      // One stage into dense and sparse through the one gemm(): the same bytes.
      auto same = [&](const auto& act, const auto& stage, auto* dense_out, auto* sparse_out) {
        gemm(act, dw, stage, dense_out);
        gemm(act, sw, stage, sparse_out, 0, o);
        EXPECT_EQ(0, std::memcmp(dense_out, sparse_out, size * sizeof(*dense_out)));
      };
      same(as, rq, d8.data(), s8.data());
      same(au8, rq_u8, du.data(), su.data());
      same(au8, rq_tensor, d8.data(), s8.data());
      same(as, rq_u8, du.data(), su.data());
      same(as, dq, df.data(), sf.data());
      same(au8, DequantizeStage{}, df.data(), sf.data());
    }
  }
}

// K above kMaxKChunk: partial sums per chunk combined in int64, exactly as
// the dense driver (int32 output where it fits, requantized and dequantized).
TEST_P(SparseGemm, KChunksMatchDense) {
  std::mt19937 rng(13);
  const int64_t m = 3, n = 66, k = detail::kMaxKChunk + 44;
  const std::vector<int8_t> w = random_pruned(n, k, rng);
  const PackedSparseWeights sw = pack_sparse_weights(compress24(w, n, k));
  const PackedWeights dw = pack_weights(w.data(), n, k, WeightLayout::out_in);
  const auto a = random_bytes<uint8_t>(static_cast<std::size_t>(m * k), rng);
  const ActivationsU8 act{a.data(), m, k, 0, 128};
  RequantizeStage rq;
  rq.multipliers = {quantize_multiplier(1e-6)};
  for (SparsePath path : kPaths) {
    const SparseGemmOptions o{0, path};
    std::vector<int32_t> d(static_cast<std::size_t>(m * n)), c(d.size());
    gemm(act, dw, Int32Output{}, d.data());
    gemm(act, sw, Int32Output{}, c.data(), 0, o);
    EXPECT_EQ(d, c) << sparse_path_name(path);
    std::vector<int8_t> d8(d.size()), c8(d.size());
    gemm(act, dw, rq, d8.data());
    gemm(act, sw, rq, c8.data(), 0, o);
    EXPECT_EQ(d8, c8) << sparse_path_name(path);
    std::vector<float> df(d.size()), cf(d.size());
    gemm(act, dw, DequantizeStage{}, df.data());
    gemm(act, sw, DequantizeStage{}, cf.data(), 0, o);
    EXPECT_EQ(0, std::memcmp(df.data(), cf.data(), df.size() * sizeof(float)));
  }
}

// An exact sum beyond int32 is refused for the int32 output, as dense does.
TEST_P(SparseGemm, Int32OverflowThrowsLikeDense) {
  const int64_t k = 140000;
  std::vector<int8_t> w(static_cast<std::size_t>(k), 0);
  for (int64_t kk = 0; kk < k; kk += 2) w[static_cast<std::size_t>(kk)] = 127;
  const std::vector<uint8_t> a(static_cast<std::size_t>(k), 255);
  const ActivationsU8 act{a.data(), 1, k, 0, 0};
  const PackedSparseWeights sw = pack_sparse_weights(compress24(w, 1, k));
  const PackedWeights dw = pack_weights(w.data(), 1, k, WeightLayout::out_in);
  int32_t c = 0;
  EXPECT_THROW(gemm(act, dw, Int32Output{}, &c), Error);
  for (SparsePath path : kPaths)
    EXPECT_THROW(gemm(act, sw, Int32Output{}, &c, 0, {0, path}), Error);
}

TEST_P(SparseGemm, ThreadsAndRepackingGiveIdenticalResults) {
  std::mt19937 rng(17);
  const int64_t m = 9, n = 300, k = 130;
  const std::vector<int8_t> w = random_pruned(n, k, rng);
  PackedSparseWeights scalar_packed;
  {
    ScopedIsa scalar(Isa::scalar);
    scalar_packed = pack_sparse_weights(compress24(w, n, k));
  }
  const PackedSparseWeights sw = pack_sparse_weights(compress24(w, n, k));
  const auto a = random_bytes<uint8_t>(static_cast<std::size_t>(m * k), rng);
  const ActivationsU8 act{a.data(), m, k, 0, 9};
  std::vector<int32_t> ref(static_cast<std::size_t>(m * n));
  gemm(act, pack_weights(w.data(), n, k, WeightLayout::out_in), Int32Output{}, ref.data());
  for (SparsePath path : kPaths) {
    for (int threads : {1, 2, 3}) {
      std::vector<int32_t> c(ref.size()), r(ref.size());
      gemm(act, sw, Int32Output{}, c.data(), 0, {threads, path});
      gemm(act, scalar_packed, Int32Output{}, r.data(), 0, {threads, path});
      EXPECT_EQ(c, ref) << threads << sparse_path_name(path);
      EXPECT_EQ(r, ref) << threads << sparse_path_name(path);
    }
  }
}

// The non-VBMI AVX-512 table (Cascade Lake) runs on a VBMI host too: its
// kernels must agree with the scalar ones bit for bit.
TEST_P(SparseGemm, AvxWithoutVbmiTableMatchesScalarKernels) {
  if (GetParam() != Isa::avx512vnni) GTEST_SKIP() << "avx512vnni only";
  const detail::SparseGemmKernels& t = detail::sparse_gemm_kernels_without_vbmi();
  const detail::SparseGemmKernels& s = detail::sparse_gemm_kernels(Isa::scalar);
  std::mt19937 rng(19);
  const int64_t n = 64, k = 72;
  const std::vector<int8_t> w = random_pruned(n, k, rng);
  const PackedSparseWeights sw = pack_sparse_weights(compress24(w, n, k));
  const detail::PackedSparseWeightsData& d = sw.data();
  ASSERT_EQ(d.nr, t.nr);
  for (int mr = 1; mr <= t.mr; ++mr) {
    const auto a = random_bytes<uint8_t>(static_cast<std::size_t>(mr * d.kp), rng);
    std::vector<int32_t> zp(static_cast<std::size_t>(mr), 17);
    std::vector<int32_t> c1(static_cast<std::size_t>(mr * n)), c2(c1.size());
    detail::SpgemmUkernelParams u;
    u.a = a.data();
    u.w = d.panel(0);
    u.steps = d.steps();
    u.panel_nr = d.nr;
    u.mr = mr;
    u.nr = 61;
    u.ldc = n;
    u.a_zero_point = zp.data();
    u.col_sums = d.col_sums.data();
    u.c = c1.data();
    t.ukernel(u);
    u.c = c2.data();
    s.ukernel(u);
    EXPECT_EQ(c1, c2) << mr;
  }
  std::vector<int8_t> e1(static_cast<std::size_t>(n * d.kp)), e2(e1.size());
  detail::SpgemmExpandParams e{d.panel(0), d.steps(), d.nr, e1.data()};
  t.expand(e);
  e.dst = e2.data();
  s.expand(e);
  EXPECT_EQ(e1, e2);
}

TEST_P(SparseGemm, PackedBytesAreAtMostPoint65OfDense) {
  std::mt19937 rng(23);
  const int64_t n = 256, k = 1024;
  const std::vector<int8_t> w = random_pruned(n, k, rng);
  const PackedSparseWeights sw = pack_sparse_weights(compress24(w, n, k));
  const PackedWeights dw = pack_weights(w.data(), n, k, WeightLayout::out_in);
  EXPECT_LE(static_cast<double>(sw.packed_bytes()), 0.65 * static_cast<double>(dw.packed_bytes()));
  EXPECT_EQ(std::vector<int32_t>(sw.column_sums().begin(), sw.column_sums().end()),
            std::vector<int32_t>(dw.column_sums().begin(), dw.column_sums().end()));
}

TEST_P(SparseGemm, AutomaticPathFollowsRowsAndSize) {
  std::mt19937 rng(29);
  // Weights of about twice this host's L2 (sparse packing: ~0.63 bytes per
  // weight), so "beyond L2" holds whatever the cache size.
  const int64_t k = 4096;
  const int64_t n =
      std::max<int64_t>(64, (2 * detail::l2_cache_bytes() / (k * 5 / 8) + 63) / 64 * 64);
  const std::vector<int8_t> w = random_pruned(n, k, rng);
  const PackedSparseWeights sw = pack_sparse_weights(compress24(w, n, k));
  ASSERT_GT(static_cast<int64_t>(sw.packed_bytes()), detail::l2_cache_bytes());
  EXPECT_EQ(choose_sparse_path(sw, 1), SparsePath::direct);
  // Up to the limit direct (at least 1 row: a limit of 0 still runs M = 1
  // direct), above it expand.
  const int64_t limit = std::max<int64_t>(sparse_direct_max_rows(GetParam()), 1);
  EXPECT_EQ(choose_sparse_path(sw, limit), SparsePath::direct);
  if (limit < 1000 && choose_sparse_path(sw, 256, {0, SparsePath::expand}) == SparsePath::expand) {
    EXPECT_EQ(choose_sparse_path(sw, limit + 1), SparsePath::expand);
  }
  EXPECT_EQ(choose_sparse_path(sw, 256, {0, SparsePath::direct}), SparsePath::direct);
  const std::vector<uint8_t> a(static_cast<std::size_t>(k), 1);
  std::vector<int32_t> c(static_cast<std::size_t>(n));
  EXPECT_EQ(gemm(ActivationsU8{a.data(), 1, k, 0, 0}, sw, Int32Output{}, c.data()),
            SparsePath::direct);
}

TEST(SparseGemmErrors, BadInputsThrow) {
  const std::vector<int8_t> w(16, 0);
  CompressedNM<int8_t> c = compress(w, WeightShape{2, 8, WeightLayout::out_in});
  const std::vector<float> bad_scale{0.0f};
  EXPECT_THROW(pack_sparse_weights(c, bad_scale), Error);
  CompressedNM<int8_t> c14 =
      compress(w, WeightShape{2, 8, WeightLayout::out_in}, PruneOptions{{1, 4}});
  EXPECT_THROW(pack_sparse_weights(c14), Error);
  const PackedSparseWeights sw = pack_sparse_weights(c);
  const std::vector<uint8_t> a(8, 0);
  int32_t out[2];
  EXPECT_THROW(gemm(ActivationsU8{a.data(), 1, 7, 0, 0}, sw, Int32Output{}, out), Error);
  EXPECT_THROW(gemm(ActivationsU8{a.data(), 1, 8, 0, 0}, PackedSparseWeights{}, Int32Output{}, out),
               Error);
  EXPECT_THROW(gemm(ActivationsU8{a.data(), 1, 8, 0, 0}, sw, Int32Output{}, out, 0,
                    {0, static_cast<SparsePath>(7)}),
               Error);
  EXPECT_THROW(gemm(ActivationsU8{a.data(), 1, 8, 0, 300}, sw, Int32Output{}, out), Error);
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(SparseGemm);

}  // namespace
}  // namespace sparq
