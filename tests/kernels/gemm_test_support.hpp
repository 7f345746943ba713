// Shared helpers for the GEMM tests: random data, the straightforward int64
// reference C[i][n] = sum_k (a[i][k] - zp_a) * w[n][k], and the checks that
// both the per-ISA suites and the emulated-AMX suite run through gemm() with
// whatever kernel table is in effect.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <tuple>
#include <vector>

#include "kernels/gemm_kernels.hpp"
#include "sparq/error.hpp"
#include "sparq/gemm/gemm.hpp"
#include "sparq/quant/requantize.hpp"

namespace sparq::testing {

template <class T>
std::vector<T> random_bytes(std::size_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int> dist(std::is_signed_v<T> ? -128 : 0,
                                          std::is_signed_v<T> ? 127 : 255);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(dist(rng));
  return v;
}

/// a: m x k with leading dimension lda; w: n x k dense ([out][in]).
template <class T>
std::vector<int64_t> reference_gemm(const T* a, int64_t m, int64_t k, int64_t lda, int32_t zp,
                                    const int8_t* w, int64_t n) {
  std::vector<int64_t> c(static_cast<std::size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      int64_t s = 0;
      for (int64_t kk = 0; kk < k; ++kk) {
        s += (int64_t{a[i * lda + kk]} - zp) * int64_t{w[j * k + kk]};
      }
      c[static_cast<std::size_t>(i * n + j)] = s;
    }
  }
  return c;
}

inline int32_t sat32(int64_t v) {
  return static_cast<int32_t>(std::clamp<int64_t>(v, std::numeric_limits<int32_t>::min(),
                                                  std::numeric_limits<int32_t>::max()));
}

/// One int32 gemm() of random data against reference_gemm, every element,
/// and nothing written in C's padding (ldc > n).
template <class T>
void check_int32_gemm(std::mt19937& rng, int64_t m, int64_t n, int64_t k, int32_t zp,
                      int64_t lda_extra = 0, int64_t ldc_extra = 0, int threads = 1) {
  SCOPED_TRACE(::testing::Message()
               << "m=" << m << " n=" << n << " k=" << k << " zp=" << zp << " lda+" << lda_extra
               << " ldc+" << ldc_extra << " threads=" << threads);
  const int64_t lda = k + lda_extra;
  const int64_t ldc = n + ldc_extra;
  const auto a = random_bytes<T>(static_cast<std::size_t>(m * lda), rng);
  const auto w = random_bytes<int8_t>(static_cast<std::size_t>(n * k), rng);
  const PackedWeights packed = pack_weights(w.data(), n, k, WeightLayout::out_in);
  std::vector<int32_t> c(static_cast<std::size_t>(m * ldc), -7);
  gemm(Activations<T>{a.data(), m, k, lda, zp}, packed, Int32Output{}, c.data(), ldc,
       GemmOptions{threads});
  const auto ref = reference_gemm(a.data(), m, k, lda, zp, w.data(), n);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      const int32_t got = c[static_cast<std::size_t>(i * ldc + j)];
      if (j < n) {
        ASSERT_EQ(got, ref[static_cast<std::size_t>(i * n + j)]) << "at (" << i << ", " << j << ")";
      } else {
        ASSERT_EQ(got, -7) << "wrote past n at (" << i << ", " << j << ")";
      }
    }
  }
}

/// 1, 2 and 3 threads give identical int32 results, for many panels (split
/// over N) and for few panels with many rows (split over M); big enough
/// (> 8 M multiply-adds) that the driver really uses 2-3 threads.
inline void check_thread_counts(std::mt19937& rng) {
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{40, 300, 801}, {230, 9, 4100}}) {
    const auto a = random_bytes<uint8_t>(static_cast<std::size_t>(m * k), rng);
    const auto w = random_bytes<int8_t>(static_cast<std::size_t>(n * k), rng);
    const PackedWeights packed = pack_weights(w.data(), n, k, WeightLayout::out_in);
    std::vector<int32_t> c1(static_cast<std::size_t>(m * n)), c2(c1.size()), c3(c1.size());
    gemm(ActivationsU8{a.data(), m, k, 0, 9}, packed, Int32Output{}, c1.data(), 0, GemmOptions{1});
    gemm(ActivationsU8{a.data(), m, k, 0, 9}, packed, Int32Output{}, c2.data(), 0, GemmOptions{2});
    gemm(ActivationsU8{a.data(), m, k, 0, 9}, packed, Int32Output{}, c3.data(), 0, GemmOptions{3});
    EXPECT_EQ(c1, c2);
    EXPECT_EQ(c1, c3);
    check_int32_gemm<int8_t>(rng, m, n, k, -3, 0, 0, 2);
  }
}

/// Activations all 255 and weights all -128 (m rows): every product is
/// -32640, the largest magnitude u8 x s8 has; an int16 pair sum
/// (vpmaddubsw) would saturate at -32768 and be wrong.
inline void check_extreme_values(int64_t m) {
  for (int64_t k : {2, 4, 64, 1000}) {
    const int64_t n = 21;
    const std::vector<uint8_t> a(static_cast<std::size_t>(m * k), 255);
    const std::vector<int8_t> w(static_cast<std::size_t>(n * k), -128);
    const PackedWeights packed = pack_weights(w.data(), n, k, WeightLayout::out_in);
    std::vector<int32_t> c(static_cast<std::size_t>(m * n));
    gemm(ActivationsU8{a.data(), m, k, 0, 0}, packed, Int32Output{}, c.data());
    for (int32_t v : c) ASSERT_EQ(v, -32640 * k);
    const std::vector<int8_t> as(static_cast<std::size_t>(m * k), -128);
    gemm(ActivationsS8{as.data(), m, k, 0, 127}, packed, Int32Output{}, c.data());
    for (int32_t v : c) ASSERT_EQ(v, 255 * 128 * k);  // (-128 - 127) * -128
  }
}

/// The requantizing stage, per tensor and per channel, s8 and u8 output, on
/// s8 activations a (m x k, zero point -5) times w (n x k) packed in
/// `packed`: bit-exact with sparq::requantize of the saturated int64 sum +
/// bias.
inline void check_requantized_gemm(const std::vector<int8_t>& a, const std::vector<int8_t>& w,
                                   const PackedWeights& packed, int64_t m, int64_t n, int64_t k) {
  const int32_t zp_a = -5;
  const auto ref = reference_gemm(a.data(), m, k, k, zp_a, w.data(), n);
  for (bool per_channel : {false, true}) {
    RequantizeStage stage;
    for (int64_t j = 0; j < (per_channel ? n : 1); ++j) {
      stage.multipliers.push_back(quantize_multiplier(0.0004 * (1.0 + 0.37 * j)));
    }
    for (int64_t j = 0; j < n; ++j) stage.bias.push_back(static_cast<int32_t>(j * 977 - 20000));
    stage.output_zero_point = 3;
    stage.clamp_min = -128;
    stage.clamp_max = 100;
    std::vector<int8_t> c(static_cast<std::size_t>(m * n));
    gemm(ActivationsS8{a.data(), m, k, 0, zp_a}, packed, stage, c.data());
    RequantizeStage ustage = stage;
    ustage.output_zero_point = 128;
    ustage.clamp_min = 0;
    ustage.clamp_max = 255;
    std::vector<uint8_t> cu(static_cast<std::size_t>(m * n));
    gemm(ActivationsS8{a.data(), m, k, 0, zp_a}, packed, ustage, cu.data(), 0, GemmOptions{2});
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        const auto idx = static_cast<std::size_t>(i * n + j);
        const QuantizedMultiplier mq = stage.multipliers[per_channel ? j : 0];
        const int32_t x = sat32(ref[idx] + stage.bias[static_cast<std::size_t>(j)]);
        ASSERT_EQ(c[idx], requantize(x, mq, 3, -128, 100));
        ASSERT_EQ(cu[idx], requantize(x, mq, 128, 0, 255));
      }
    }
  }
}

/// K beyond the int32 bound: the raw int32 stage refuses a sum that does
/// not fit, and the int64 sums go through the dequantizing and requantizing
/// stages exactly.
inline void check_stages_on_split_k() {
  const int64_t k = 2 * detail::kMaxKChunk + 3;
  const int64_t m = 2;
  const int64_t n = 3;
  // All 255 against all -128: the true sum (about -4.3e9) does not fit in int32.
  std::vector<uint8_t> a(static_cast<std::size_t>(m * k), 255);
  std::vector<int8_t> w(static_cast<std::size_t>(n * k), -128);
  a[5] = 0;
  w[static_cast<std::size_t>(k + 9)] = 127;
  const PackedWeights packed = pack_weights(w.data(), n, k, WeightLayout::out_in);
  const auto ref = reference_gemm(a.data(), m, k, k, 0, w.data(), n);
  ASSERT_LT(ref[0], std::numeric_limits<int32_t>::min());
  std::vector<int32_t> c32(static_cast<std::size_t>(m * n));
  EXPECT_THROW(gemm(ActivationsU8{a.data(), m, k, 0, 0}, packed, Int32Output{}, c32.data()), Error);

  DequantizeStage ds;
  ds.activation_scale = 1e-6f;
  std::vector<float> cf(static_cast<std::size_t>(m * n));
  gemm(ActivationsU8{a.data(), m, k, 0, 0}, packed, ds, cf.data());
  for (std::size_t i = 0; i < cf.size(); ++i) {
    EXPECT_NEAR(cf[i], ref[i] * 1e-6, std::fabs(ref[i] * 1e-6) * 1e-6);
  }
  RequantizeStage rs;
  rs.multipliers = {quantize_multiplier(1e-8)};
  rs.bias = {5, -7, 1 << 30};
  std::vector<int8_t> c8(static_cast<std::size_t>(m * n));
  gemm(ActivationsU8{a.data(), m, k, 0, 0}, packed, rs, c8.data());
  for (std::size_t i = 0; i < c8.size(); ++i) {
    const int32_t x = sat32(ref[i] + rs.bias[i % n]);
    EXPECT_EQ(c8[i], requantize(x, rs.multipliers[0], 0, -128, 127)) << i;
  }
}

}  // namespace sparq::testing
