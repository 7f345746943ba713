// Depthwise row kernels: every ISA's kernel gives the scalar reference's
// int32 sums bit for bit, and the reference gives the plain definition
// sum over taps of (x - zero_point) * w, on random data and at the extremes
// (x = 0 and 255, w = -128 and 127, the zero point at both ends), for channel
// counts around the vector width and unroll (1..70), odd and even tap
// counts (the zero-weight pad tap), and runs of 1 and 3 pixels whose taps
// advance by x_step.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/depthwise_kernels.hpp"
#include "support/isa_param.hpp"

namespace sparq::detail {
namespace {

class DepthwiseKernelTest : public sparq::testing::IsaTest {};

struct Case {
  std::vector<std::vector<uint8_t>> rows;  // [taps][pixels * x_step]: pixel q at q * x_step
  std::vector<std::vector<int8_t>> w;      // [taps][ch]
  int32_t zp = 0;
  int64_t ch = 0, pixels = 0, x_step = 0;
};

Case random_case(int64_t taps, int64_t ch, int64_t pixels, uint64_t seed, bool extremes) {
  std::mt19937_64 rng(seed);
  Case k;
  k.ch = ch;
  k.pixels = pixels;
  k.x_step = ch + 3;  // a gap between pixels, as a stride > 1 leaves
  k.zp = extremes ? (seed % 2 ? 255 : 0) : static_cast<int32_t>(rng() % 256);
  const auto bytes = static_cast<std::size_t>(pixels * k.x_step);
  k.rows.assign(static_cast<std::size_t>(taps), std::vector<uint8_t>(bytes));
  k.w.assign(static_cast<std::size_t>(taps), std::vector<int8_t>(static_cast<std::size_t>(ch)));
  for (auto& row : k.rows) {
    for (auto& v : row) v = extremes ? (rng() % 2 ? 255 : 0) : static_cast<uint8_t>(rng());
  }
  for (auto& row : k.w) {
    for (auto& v : row) {
      v = extremes ? (rng() % 2 ? int8_t{127} : int8_t{-128}) : static_cast<int8_t>(rng());
    }
  }
  return k;
}

/// Runs `kernel` on `k` laid out as the header says; returns acc.
std::vector<int32_t> run(DepthwiseRowFn kernel, const Case& k) {
  const auto taps = static_cast<int64_t>(k.rows.size());
  const int64_t ch = k.ch;
  const int64_t pairs = (taps + 1) / 2;
  std::vector<int16_t> w(static_cast<std::size_t>(pairs * ch * 2), 0);
  std::vector<int32_t> zp_w(static_cast<std::size_t>(ch), 0);
  std::vector<const uint8_t*> x(static_cast<std::size_t>(2 * pairs), k.rows[0].data());
  for (int64_t t = 0; t < taps; ++t) {
    x[static_cast<std::size_t>(t)] = k.rows[t].data();
    for (int64_t c = 0; c < ch; ++c) {
      const int8_t v = k.w[t][static_cast<std::size_t>(c)];
      w[static_cast<std::size_t>(((t / 2) * ch + c) * 2 + t % 2)] = v;
      zp_w[static_cast<std::size_t>(c)] += k.zp * v;
    }
  }
  std::vector<int32_t> acc(static_cast<std::size_t>(k.pixels * ch), -7);
  kernel({.x = x.data(),
          .x_step = k.x_step,
          .pixels = k.pixels,
          .w = w.data(),
          .zp_w = zp_w.data(),
          .pairs = pairs,
          .ch = ch,
          .acc = acc.data()});
  return acc;
}

std::vector<int32_t> definition(const Case& k) {
  std::vector<int32_t> acc(static_cast<std::size_t>(k.pixels * k.ch), 0);
  for (int64_t q = 0; q < k.pixels; ++q) {
    for (std::size_t t = 0; t < k.rows.size(); ++t) {
      for (int64_t c = 0; c < k.ch; ++c) {
        acc[static_cast<std::size_t>(q * k.ch + c)] +=
            (k.rows[t][static_cast<std::size_t>(q * k.x_step + c)] - k.zp) *
            k.w[t][static_cast<std::size_t>(c)];
      }
    }
  }
  return acc;
}

TEST_P(DepthwiseKernelTest, SameSumsAsReferenceAndDefinition) {
  const DepthwiseKernels& kernels = depthwise_kernels(GetParam());
  const DepthwiseKernels& reference = depthwise_kernels(Isa::scalar);
  ASSERT_STREQ(reference.name, "scalar");
  uint64_t seed = 1;
  for (const int64_t taps : {1, 2, 3, 9, 25}) {
    for (int64_t ch = 1; ch <= 70; ++ch) {
      for (const bool extremes : {false, true}) {
        const Case k = random_case(taps, ch, ch % 2 ? 1 : 3, seed++, extremes);
        const std::vector<int32_t> want = definition(k);
        ASSERT_EQ(run(reference.row_u8s16, k), want) << "taps " << taps << " ch " << ch;
        ASSERT_EQ(run(kernels.row_u8s16, k), want)
            << kernels.name << ": taps " << taps << " ch " << ch << (extremes ? " extremes" : "");
      }
    }
  }
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(DepthwiseKernelTest);

}  // namespace
}  // namespace sparq::detail
