// Every quantize/dequantize kernel of the active ISA against the scalar
// reference kernels, bit for bit (integer outputs: no tolerance; float
// outputs of dequantize: identical bits, since both compute the same single
// float multiply of an exactly converted integer). Runs once per ISA.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/quantize_kernels.hpp"
#include "kernels/special_floats.hpp"
#include "support/isa_param.hpp"

namespace sparq::detail {
namespace {

class QuantizeKernelTest : public sparq::testing::IsaTest {
 protected:
  const QuantizeKernels& k() const { return quantize_kernels(GetParam()); }
};

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Inputs that stress rounding and saturation: exact ties of x * inv_scale
// (inv_scale = 4 makes (k + 0.5) / 4 an exact tie), NaN, +-Inf, huge values,
// and random values around the representable range.
std::vector<float> special_inputs(std::size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> wide(-200.0f, 200.0f);
  // The common specials, plus values that saturate the int32 conversion.
  std::vector<float> specials(std::begin(sparq::testing::kSpecialFloats),
                              std::end(sparq::testing::kSpecialFloats));
  specials.insert(specials.end(), {1e30f, -1e30f, 3e9f, -3e9f});
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    switch (rng() % 4) {
      case 0:
        v[i] = specials[rng() % specials.size()];
        break;
      case 1:
        v[i] = (static_cast<float>(static_cast<int>(rng() % 1200) - 600) + 0.5f) / 4.0f;
        break;
      default:
        v[i] = wide(rng) / 4.0f;
        break;
    }
  }
  return v;
}

struct Range {
  int32_t zp, qmin, qmax;
};

// Zero points at and beyond the ends of the range (128 with [0, 127] is
// PyTorch's symmetric uint8 + reduce_range combination).
const Range kS8Ranges[] = {{0, -128, 127}, {-128, -128, 127}, {127, -128, 127},
                           {5, -127, 127}, {-3, -64, 63},     {100, -64, 63}};
const Range kU8Ranges[] = {{0, 0, 255},   {255, 0, 255}, {128, 0, 255},
                           {128, 0, 127}, {37, 1, 255},  {3, 10, 20}};

template <class T>
void check_quantize(QuantizeTensorFn fn, QuantizeTensorFn ref, const Range& r, float inv_scale) {
  const auto input = special_inputs(2 * 64 + 8, 7u + static_cast<uint32_t>(r.zp + 300));
  // Every length 0..2*64+2 (64 = the AVX-512 unroll, 4 vectors) at every
  // misalignment of source and destination.
  for (std::size_t offset = 0; offset < 3; ++offset) {
    for (std::size_t n = 0; n + offset <= 2 * 64 + 2 + offset && n + offset <= input.size(); ++n) {
      std::vector<uint8_t> got(n + 2, 0xAB), want(n + 2, 0xAB);
      fn({input.data() + offset, got.data() + 1, n, inv_scale, r.zp, r.qmin, r.qmax});
      ref({input.data() + offset, want.data() + 1, n, inv_scale, r.zp, r.qmin, r.qmax});
      ASSERT_EQ(got, want) << "n=" << n << " offset=" << offset << " zp=" << r.zp << " range=["
                           << r.qmin << "," << r.qmax << "]";
    }
  }
}

TEST_P(QuantizeKernelTest, QuantizeS8MatchesReference) {
  for (const auto& r : kS8Ranges) {
    for (float inv : {4.0f, 1.0f / 0.0173f, 1e-3f, 1e30f}) {
      check_quantize<int8_t>(k().quantize_s8, quantize_s8__reference, r, inv);
    }
  }
}

TEST_P(QuantizeKernelTest, QuantizeU8MatchesReference) {
  for (const auto& r : kU8Ranges) {
    for (float inv : {4.0f, 1.0f / 0.0173f, 1e-3f, 1e30f}) {
      check_quantize<uint8_t>(k().quantize_u8, quantize_u8__reference, r, inv);
    }
  }
}

// Values whose results are known without the reference: ties to even,
// NaN -> zero point, +-Inf and huge values saturate.
TEST_P(QuantizeKernelTest, KnownValues) {
  const std::vector<float> x = {0.25f,  0.75f, -0.25f, -0.75f, 1.25f, kNaN, kInf, -kInf, 1e30f,
                                -1e30f, 31.6f, -32.2f, 0.0f,   -0.0f, 2.5f, 3.5f, 0.125f};
  // inv_scale 2: t = 0.5 -> 0, 1.5 -> 2, -0.5 -> -0, -1.5 -> -2, 2.5 -> 2.
  const std::vector<int8_t> want_s8 = {3,    5,  3,   1, 5, 3, 127, -128, 127,
                                       -128, 66, -61, 3, 3, 8, 10,  3};
  // One value per vector lane position and tails: repeat the pattern.
  for (std::size_t reps : {1, 3, 9}) {
    std::vector<float> in;
    std::vector<int8_t> want;
    for (std::size_t r = 0; r < reps; ++r) {
      in.insert(in.end(), x.begin(), x.end());
      want.insert(want.end(), want_s8.begin(), want_s8.end());
    }
    std::vector<int8_t> got(in.size());
    k().quantize_s8({in.data(), got.data(), in.size(), 2.0f, 3, -128, 127});
    EXPECT_EQ(got, want) << "reps=" << reps;
  }
  // uint8 with zero point 128 and qmax 127: everything >= 0 saturates at 127,
  // including NaN (its zero point is clamped into the range).
  const std::vector<float> u = {kNaN, 0.0f, -0.5f, -100.0f, 1.0f, -kInf};
  std::vector<uint8_t> got(u.size());
  k().quantize_u8({u.data(), got.data(), u.size(), 1.0f, 128, 0, 127});
  EXPECT_EQ(got, (std::vector<uint8_t>{127, 127, 127, 28, 127, 0}));
}

template <class T>
void check_dequantize(DequantizeTensorFn fn, DequantizeTensorFn ref, int32_t zp, float scale) {
  std::vector<uint8_t> bytes(2 * 64 + 8);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 37 + 11);
  bytes[0] = 0;
  bytes[1] = 255;
  bytes[2] = 128;
  bytes[3] = 127;
  for (std::size_t offset = 0; offset < 3; ++offset) {
    for (std::size_t n = 0; n <= 2 * 64 + 2; ++n) {
      std::vector<float> got(n + 2, -7.0f), want(n + 2, -7.0f);
      fn({bytes.data() + offset, got.data() + 1, n, scale, zp});
      ref({bytes.data() + offset, want.data() + 1, n, scale, zp});
      ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)))
          << "n=" << n << " offset=" << offset << " zp=" << zp;
    }
  }
}

TEST_P(QuantizeKernelTest, DequantizeMatchesReference) {
  for (int32_t zp : {0, -128, 127, 17}) {
    for (float scale : {0.0173f, 1.0f, 3e38f}) {
      check_dequantize<int8_t>(k().dequantize_s8, dequantize_s8__reference, zp, scale);
    }
  }
  for (int32_t zp : {0, 255, 128, 3}) {
    for (float scale : {0.0173f, 1.0f, 3e38f}) {
      check_dequantize<uint8_t>(k().dequantize_u8, dequantize_u8__reference, zp, scale);
    }
  }
}

TEST_P(QuantizeKernelTest, DequantizeKnownValues) {
  const std::vector<int8_t> q = {-128, 127, 0, 1, -1, 3};
  std::vector<float> got(q.size());
  k().dequantize_s8({q.data(), got.data(), q.size(), 0.5f, 3});
  EXPECT_EQ(got, (std::vector<float>{-65.5f, 62.0f, -1.5f, -1.0f, -2.0f, 0.0f}));
  const std::vector<uint8_t> u = {0, 255, 128};
  std::vector<float> gu(u.size());
  k().dequantize_u8({u.data(), gu.data(), u.size(), 2.0f, 128});
  EXPECT_EQ(gu, (std::vector<float>{-256.0f, 254.0f, 0.0f}));
}

// Per-channel kernels: inner == 1 (parameters as vectors) for every channel
// count up to 2*64+2, and inner > 1 runs of tail lengths.
TEST_P(QuantizeKernelTest, ChannelKernelsMatchReference) {
  std::mt19937 rng(99);
  for (std::size_t inner : {1, 2, 7, 16, 33}) {
    for (std::size_t channels = 0; channels <= (inner == 1 ? 130u : 9u); ++channels) {
      const std::size_t n = channels * inner;
      const auto x = special_inputs(n + 1, static_cast<uint32_t>(channels * 31 + inner));
      std::vector<float> inv(channels), scales(channels);
      std::vector<int32_t> zs8(channels), zu8(channels);
      for (std::size_t c = 0; c < channels; ++c) {
        scales[c] = std::ldexp(1.0f + static_cast<float>(rng() % 1000) / 1000.0f,
                               static_cast<int>(rng() % 12) - 8);
        inv[c] = 1.0f / scales[c];
        zs8[c] = static_cast<int32_t>(rng() % 256) - 128;
        zu8[c] = static_cast<int32_t>(rng() % 256);
      }
      for (int dt = 0; dt < 2; ++dt) {
        const bool s8 = dt == 0;
        const int32_t* zp = s8 ? zs8.data() : zu8.data();
        const int32_t qmin = s8 ? -127 : 0, qmax = s8 ? 127 : 255;
        std::vector<uint8_t> got(n + 1, 0xCD), want(n + 1, 0xCD);
        const QuantizeChannelArgs ga{x.data() + 1, got.data(), channels, inner,
                                     inv.data(),   zp,         qmin,     qmax};
        const QuantizeChannelArgs wa{x.data() + 1, want.data(), channels, inner,
                                     inv.data(),   zp,          qmin,     qmax};
        (s8 ? k().quantize_channel_s8 : k().quantize_channel_u8)(ga);
        (s8 ? quantize_channel_s8__reference : quantize_channel_u8__reference)(wa);
        ASSERT_EQ(got, want) << "quantize s8=" << s8 << " inner=" << inner
                             << " channels=" << channels;

        std::vector<float> dg(n + 1, -1.0f), dw(n + 1, -1.0f);
        (s8 ? k().dequantize_channel_s8 : k().dequantize_channel_u8)(
            {got.data() + 1, dg.data() + 1, channels, inner, scales.data(), zp});
        (s8 ? dequantize_channel_s8__reference : dequantize_channel_u8__reference)(
            {got.data() + 1, dw.data() + 1, channels, inner, scales.data(), zp});
        ASSERT_EQ(0, std::memcmp(dg.data(), dw.data(), dg.size() * sizeof(float)))
            << "dequantize s8=" << s8 << " inner=" << inner << " channels=" << channels;
      }
    }
  }
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(QuantizeKernelTest);

TEST(QuantizeKernelTable, AvxVnniSharesAvx2) {
#if defined(__x86_64__)
  EXPECT_EQ(&quantize_kernels(Isa::avxvnni), &quantize_kernels(Isa::avx2));
#endif
  EXPECT_STREQ(quantize_kernels(Isa::scalar).name, "reference");
}

}  // namespace
}  // namespace sparq::detail
