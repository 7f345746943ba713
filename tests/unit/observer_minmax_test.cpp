// MinMax, MovingAverageMinMax, PerChannelMinMax and
// MovingAveragePerChannelMinMax observers against FP64 reference loops, on
// every ISA (the observers dispatch to SIMD kernels), plus robustness,
// merge, save/load and error cases.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <numeric>

#include "sparq/observe/observers.hpp"
#include "support/error_of.hpp"
#include "support/isa_param.hpp"
#include "unit/observer_test_data.hpp"

namespace sparq {
namespace {

using testing::normal_data;
using testing::poison;
using testing::ref_minmax;
using testing::uniform_data;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

class MinMaxIsaTest : public sparq::testing::IsaTest {};

// Sizes around every vector width and unroll factor (16, 32, 64 floats).
const std::size_t kSizes[] = {1, 2, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 129, 1000, 4099};

TEST_P(MinMaxIsaTest, MatchesReferenceOnRandomAndPoisonedData) {
  for (std::size_t n : kSizes) {
    for (int poisoned = 0; poisoned < 2; ++poisoned) {
      auto x = normal_data(n, 0.5f, 3.0f, n * 7 + poisoned);
      testing::Poison p;
      if (poisoned) p = poison(x, n);
      MinMaxObserver obs;
      obs.observe(x);
      const auto ref = ref_minmax(x.data(), n);
      EXPECT_EQ(obs.stats().observed, static_cast<int64_t>(n));
      EXPECT_EQ(obs.stats().nan_count, p.nan) << n;
      EXPECT_EQ(obs.stats().inf_count, p.inf) << n;
      ASSERT_EQ(obs.has_range(), ref.any()) << n;
      if (!ref.any()) continue;
      // min/max are exact: no tolerance.
      EXPECT_EQ(obs.range().first, ref.min) << n;
      EXPECT_EQ(obs.range().second, ref.max) << n;
      EXPECT_EQ(obs.qparams(), compute_qparams(static_cast<float>(ref.min),
                                               static_cast<float>(ref.max), obs.config().spec));
    }
  }
}

TEST_P(MinMaxIsaTest, SeveralBatchesOfAnyRank) {
  MinMaxObserver obs;
  double lo = kInf, hi = -kInf;
  for (int b = 0; b < 5; ++b) {
    const auto x = uniform_data(2 * 3 * 41, -1.0f - b, 2.0f + b * 0.5f, b);
    const int64_t shape[] = {2, 3, 41};
    obs.observe(x, shape);
    const auto r = ref_minmax(x.data(), x.size());
    lo = std::min(lo, r.min);
    hi = std::max(hi, r.max);
  }
  EXPECT_EQ(obs.range().first, lo);
  EXPECT_EQ(obs.range().second, hi);
  EXPECT_EQ(obs.stats().observed, 5 * 2 * 3 * 41);
}

TEST_P(MinMaxIsaTest, MovingAverageFollowsThePyTorchFormula) {
  const float c = 0.1f;
  MovingAverageMinMaxObserver obs(QuantSpec{}, c);
  float lo = 0, hi = 0;
  for (int b = 0; b < 6; ++b) {
    auto x = uniform_data(300 + b, -2.0f + b, 3.0f + 2 * b, 100 + b);
    if (b == 2) x.assign(x.size(), kNaN);  // a batch without finite values is skipped
    obs.observe(x);
    const auto r = ref_minmax(x.data(), x.size());
    if (!r.any()) continue;
    if (b == 0) {
      lo = static_cast<float>(r.min);
      hi = static_cast<float>(r.max);
    } else {
      // PyTorch: min_val + averaging_constant * (min_val_cur - min_val), float.
      lo = lo + c * (static_cast<float>(r.min) - lo);
      hi = hi + c * (static_cast<float>(r.max) - hi);
    }
    EXPECT_EQ(obs.range().first, lo) << b;
    EXPECT_EQ(obs.range().second, hi) << b;
  }
}

TEST(MinMaxObserver, MovingAverageStaysFiniteNearFloatMax) {
  MovingAverageMinMaxObserver obs(QuantSpec{}, 0.5f);
  const float big = std::numeric_limits<float>::max();
  const float a[] = {-big, -big * 0.9f}, b[] = {big * 0.9f, big};
  obs.observe(a);
  obs.observe(b);  // (batch - min) overflows float: redone in double
  const auto [lo, hi] = obs.range();
  EXPECT_TRUE(std::isfinite(lo));
  EXPECT_TRUE(std::isfinite(hi));
  // Exact value in double: -big + 0.5 * (0.9 big + big) = -0.05 big (rounded to float).
  EXPECT_FLOAT_EQ(lo, -0.05f * big);
  EXPECT_FLOAT_EQ(hi, 0.05f * big);  // -0.9 big + 0.5 * (big + 0.9 big)
}

// ------------------------------------------------------------ robustness

TEST(MinMaxObserver, NoDataIsAClearError) {
  MinMaxObserver obs;
  EXPECT_THROW(obs.qparams(), Error);
  obs.observe(std::span<const float>());  // empty batch: nothing changes
  EXPECT_ERROR(obs.qparams(), "no finite value");
}

TEST(MinMaxObserver, AllNaNIsCountedAndAClearError) {
  MinMaxObserver obs;
  const std::vector<float> x(100, kNaN);
  obs.observe(x);
  EXPECT_EQ(obs.stats().nan_count, 100);
  EXPECT_ERROR(obs.qparams(), "100 NaN");
}

TEST(MinMaxObserver, DegenerateAndExtremeRangesGiveValidQParams) {
  const float tiny = 1e-30f, huge = 1e30f;
  const std::vector<std::vector<float>> cases = {
      std::vector<float>(1000, 0.0f),   // all zero
      std::vector<float>(77, -0.0f),    // negative zeros
      std::vector<float>(1000, 3.25f),  // constant
      {42.0f},                          // single element
      {tiny, -tiny, 0.5f * tiny},       // tiny range
      {huge, -huge, 0.0f},              // huge range
      {kInf, -kInf, kNaN, 1.0f},        // one finite among non-finite
      {std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::denorm_min()},
  };
  for (const auto& x : cases) {
    for (Scheme scheme : {Scheme::symmetric, Scheme::asymmetric}) {
      for (DType dtype : {DType::s8, DType::u8}) {
        QuantSpec spec;
        spec.scheme = scheme;
        spec.dtype = dtype;
        MinMaxObserver obs(spec);
        obs.observe(x);
        const QParams qp = obs.qparams();
        EXPECT_TRUE(std::isfinite(qp.scale) && qp.scale > 0) << x[0];
        EXPECT_GE(qp.zero_point, spec.qmin());
        EXPECT_LE(qp.zero_point, spec.qmax());
      }
    }
  }
  MinMaxObserver zeros;
  zeros.observe(std::vector<float>(10, 0.0f));
  EXPECT_EQ(zeros.qparams().scale, std::numeric_limits<float>::epsilon());  // PyTorch's eps
  EXPECT_EQ(zeros.range().first, 0.0f);
}

TEST(MinMaxObserver, NegativeZeroIsReportedAsPlusZero) {
  MinMaxObserver obs;
  obs.observe(std::vector<float>(40, -0.0f));
  EXPECT_FALSE(std::signbit(obs.range().first));
  EXPECT_FALSE(std::signbit(obs.range().second));
}

TEST(MinMaxObserver, TooWideARangeIsAClearError) {
  QuantSpec spec;
  spec.scheme = Scheme::asymmetric;
  MinMaxObserver obs(spec);
  const float big = std::numeric_limits<float>::max();
  obs.observe(std::vector<float>{-big, big});
  EXPECT_THROW(obs.qparams(), Error);  // (max - min) overflows float
}

TEST(MinMaxObserver, ShapeErrors) {
  MinMaxObserver obs;
  const std::vector<float> x(12, 1.0f);
  const int64_t wrong[] = {5, 2}, negative[] = {-1, -12};
  EXPECT_THROW(obs.observe(x, wrong), Error);
  EXPECT_THROW(obs.observe(x, negative), Error);
  EXPECT_THROW(obs.observe(x, std::span<const int64_t>()), Error);
  EXPECT_EQ(obs.stats().observed, 0);
}

TEST(ObserverConfig, ValidationNamesTheField) {
  auto expect_error = [](ObserverConfig c, const char* field) {
    try {
      make_observer(c);
      FAIL() << field;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  expect_error({.averaging_constant = 0.0f}, "averaging_constant");
  expect_error({.averaging_constant = 1.5f}, "averaging_constant");
  expect_error({.kind = ObserverKind::histogram, .bins = 8}, "bins");
  expect_error({.kind = ObserverKind::histogram, .percentile = 0.0}, "percentile");
  expect_error({.kind = ObserverKind::histogram, .percentile = 30.0}, "percentile");
  QuantSpec bad;
  bad.quant_min = 3;
  expect_error({.spec = bad}, "quant_min");
  EXPECT_THROW(MinMaxObserver(ObserverConfig{.kind = ObserverKind::histogram}), Error);
}

TEST(Observer, FactoryMakesEveryKind) {
  for (ObserverKind kind :
       {ObserverKind::minmax, ObserverKind::moving_average_minmax, ObserverKind::per_channel_minmax,
        ObserverKind::moving_average_per_channel_minmax, ObserverKind::histogram}) {
    auto obs = make_observer({.kind = kind});
    EXPECT_EQ(obs->config().kind, kind);
    const bool per_channel = kind == ObserverKind::per_channel_minmax ||
                             kind == ObserverKind::moving_average_per_channel_minmax;
    EXPECT_EQ(obs->config().spec.granularity,
              per_channel ? Granularity::per_channel : Granularity::per_tensor);
    obs->observe(uniform_data(256, -1, 1, 3));
    if (per_channel) {
      EXPECT_THROW(obs->qparams(), Error);
      EXPECT_THROW(obs->range(), Error);
      EXPECT_EQ(obs->channel_qparams().size(), 256u);  // 1-D: axis 0 has 256 channels
    } else {
      EXPECT_THROW(obs->channel_qparams(), Error);
      EXPECT_NO_THROW(obs->qparams());
    }
    auto copy = obs->clone();
    EXPECT_EQ(copy->stats(), obs->stats());
  }
}

// ------------------------------------------------------------ per channel

struct ChannelRef {
  std::vector<double> min, max;
};

// Plain loop over every element, computing its channel index from the
// multi-index.
ChannelRef ref_channels(const std::vector<float>& x, const std::vector<int64_t>& shape, int axis) {
  const int rank = static_cast<int>(shape.size());
  if (axis < 0) axis += rank;
  ChannelRef r;
  r.min.assign(shape[axis], kInf);
  r.max.assign(shape[axis], -kInf);
  for (std::size_t i = 0; i < x.size(); ++i) {
    std::size_t rest = i;
    int64_t c = 0;
    for (int d = rank - 1; d >= 0; --d) {
      const int64_t idx = static_cast<int64_t>(rest % shape[d]);
      rest /= shape[d];
      if (d == axis) c = idx;
    }
    if (!std::isfinite(x[i])) continue;
    r.min[c] = std::min<double>(r.min[c], x[i]);
    r.max[c] = std::max<double>(r.max[c], x[i]);
  }
  return r;
}

TEST_P(MinMaxIsaTest, PerChannelMatchesReferenceOnEveryAxis) {
  const std::vector<std::vector<int64_t>> shapes = {
      {64, 300}, {3, 5, 7}, {2, 64, 9}, {4, 3, 70}, {130}, {5, 1, 33, 2}, {1, 1, 1}, {6, 2048}};
  uint64_t seed = 1;
  for (const auto& shape : shapes) {
    const auto n = static_cast<std::size_t>(
        std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>()));
    for (int axis = -static_cast<int>(shape.size()); axis < static_cast<int>(shape.size());
         ++axis) {
      auto x = normal_data(n, 0.0f, 2.0f, ++seed);
      const auto p = poison(x, seed, 13);
      QuantSpec spec;
      spec.axis = axis;
      PerChannelMinMaxObserver obs(spec);
      obs.observe(x, shape);
      const ChannelRef ref = ref_channels(x, shape, axis);
      ASSERT_EQ(obs.channels(), ref.min.size());
      for (std::size_t c = 0; c < ref.min.size(); ++c) {
        EXPECT_EQ(obs.mins()[c], ref.min[c]) << "axis " << axis << " channel " << c;
        EXPECT_EQ(obs.maxs()[c], ref.max[c]) << "axis " << axis << " channel " << c;
      }
      EXPECT_EQ(obs.stats().nan_count, p.nan);
      EXPECT_EQ(obs.stats().inf_count, p.inf);
    }
  }
}

TEST_P(MinMaxIsaTest, MovingAveragePerChannelFollowsThePyTorchFormula) {
  const float c = 0.25f;
  QuantSpec spec;
  spec.axis = -1;
  MovingAveragePerChannelMinMaxObserver obs(spec, c);
  const std::vector<int64_t> shape = {37, 5};
  std::vector<float> lo(5), hi(5);
  std::vector<bool> init(5, false);
  for (int b = 0; b < 4; ++b) {
    auto x = uniform_data(37 * 5, -1.0f - b, 1.0f + 3 * b, 50 + b);
    if (b == 1) {
      for (int r = 0; r < 37; ++r) x[r * 5 + 2] = kNaN;  // channel 2 has no finite value
    }
    obs.observe(x, shape);
    const ChannelRef ref = ref_channels(x, shape, -1);
    for (int ch = 0; ch < 5; ++ch) {
      if (!(ref.min[ch] <= ref.max[ch])) continue;
      const auto bmin = static_cast<float>(ref.min[ch]), bmax = static_cast<float>(ref.max[ch]);
      if (!init[ch]) {
        lo[ch] = bmin;
        hi[ch] = bmax;
        init[ch] = true;
      } else {
        lo[ch] = lo[ch] + c * (bmin - lo[ch]);
        hi[ch] = hi[ch] + c * (bmax - hi[ch]);
      }
    }
    for (int ch = 0; ch < 5; ++ch) {
      EXPECT_EQ(obs.mins()[ch], lo[ch]) << b << " " << ch;
      EXPECT_EQ(obs.maxs()[ch], hi[ch]) << b << " " << ch;
    }
  }
  const ChannelQParams qp = obs.channel_qparams();
  EXPECT_EQ(qp, compute_qparams(lo, hi, obs.config().spec));
}

TEST(PerChannelMinMaxObserver, ChannelWithoutFiniteValuesGetsZeroRange) {
  QuantSpec spec;
  spec.axis = 1;
  PerChannelMinMaxObserver obs(spec);
  const std::vector<float> x = {1, kNaN, -2, kInf, 3, kNaN};
  const int64_t shape[] = {3, 2};
  obs.observe(x, shape);
  const ChannelQParams qp = obs.channel_qparams();
  EXPECT_EQ(qp.scales[1], spec.eps);
  EXPECT_EQ(qp[0], compute_qparams(-2.0f, 3.0f, spec));
  EXPECT_EQ(obs.stats().nan_count, 2);
  EXPECT_EQ(obs.stats().inf_count, 1);
}

TEST(PerChannelMinMaxObserver, Errors) {
  QuantSpec spec;
  spec.axis = 2;
  PerChannelMinMaxObserver obs(spec);
  const std::vector<float> x(12, 1.0f);
  const int64_t rank2[] = {3, 4}, rank3[] = {1, 3, 4}, other[] = {3, 1, 4};
  EXPECT_THROW(obs.observe(x, rank2), Error);  // axis 2 outside rank 2
  EXPECT_THROW(obs.channel_qparams(), Error);  // no data
  obs.observe(x, rank3);
  EXPECT_EQ(obs.channels(), 4u);
  const std::vector<float> y(6, 1.0f);
  const int64_t fewer[] = {2, 1, 3};
  EXPECT_THROW(obs.observe(y, fewer), Error);  // 3 channels, expected 4
  EXPECT_NO_THROW(obs.observe(x, other));      // other dims may change
}

// ------------------------------------------------------------ merge

TEST(ObserverMerge, MinMaxAndPerChannelMergeExactly) {
  const auto a = normal_data(1000, 0, 1, 1), b = normal_data(3000, 2, 4, 2);
  MinMaxObserver whole, s1, s2;
  whole.observe(a);
  whole.observe(b);
  s1.observe(a);
  s2.observe(b);
  s1.merge(s2);
  EXPECT_EQ(s1.range(), whole.range());
  EXPECT_EQ(s1.stats(), whole.stats());

  QuantSpec spec;
  spec.axis = 1;
  PerChannelMinMaxObserver pw(spec), p1(spec), p2(spec), empty(spec);
  const int64_t sa[] = {100, 10}, sb[] = {300, 10};
  pw.observe(a, sa);
  pw.observe(b, sb);
  p1.observe(a, sa);
  p2.observe(b, sb);
  p1.merge(p2);
  p1.merge(empty);
  EXPECT_EQ(p1.mins(), pw.mins());
  EXPECT_EQ(p1.maxs(), pw.maxs());
  EXPECT_EQ(p1.channel_qparams(), pw.channel_qparams());
  empty.merge(p1);
  EXPECT_EQ(empty.mins(), pw.mins());

  PerChannelMinMaxObserver other(spec);
  const int64_t s5[] = {200, 5};
  other.observe(std::vector<float>(1000, 1.0f), s5);
  EXPECT_THROW(p1.merge(other), Error);  // 5 channels vs 10
}

TEST(ObserverMerge, MovingAverageIsTheBatchWeightedMean) {
  MovingAverageMinMaxObserver a, b;
  a.observe(std::vector<float>{-1, 1});
  b.observe(std::vector<float>{-4, 2});
  b.observe(std::vector<float>{-4, 2});
  b.observe(std::vector<float>{-4, 2});
  a.merge(b);  // 1 batch at [-1, 1], 3 batches at [-4, 2]
  EXPECT_FLOAT_EQ(a.range().first, (-1.0f + 3 * -4.0f) / 4);
  EXPECT_FLOAT_EQ(a.range().second, (1.0f + 3 * 2.0f) / 4);
}

TEST(ObserverMerge, MismatchedKindOrConfigIsAnErrorAndChangesNothing) {
  MinMaxObserver a;
  a.observe(std::vector<float>{1, 2});
  MovingAverageMinMaxObserver b;
  b.observe(std::vector<float>{-5, 5});
  EXPECT_THROW(a.merge(b), Error);
  QuantSpec u8;
  u8.dtype = DType::u8;
  MinMaxObserver c(u8);
  c.observe(std::vector<float>{-5, 5});
  EXPECT_THROW(a.merge(c), Error);
  EXPECT_EQ(a.range(), std::make_pair(1.0f, 2.0f));
}

// ------------------------------------------------------------ files

TEST(ObserverFiles, EveryKindRoundTrips) {
  int tag = 0;
  for (ObserverKind kind :
       {ObserverKind::minmax, ObserverKind::moving_average_minmax, ObserverKind::per_channel_minmax,
        ObserverKind::moving_average_per_channel_minmax, ObserverKind::histogram}) {
    ObserverConfig cfg{.kind = kind, .averaging_constant = 0.3f, .bins = 512};
    cfg.spec.axis = 1;
    cfg.spec.dtype = DType::u8;
    cfg.spec.scheme = Scheme::asymmetric;
    auto obs = make_observer(cfg);
    const int64_t shape[] = {50, 8};
    auto x = normal_data(400, 1, 2, 9);
    poison(x, 4);
    obs->observe(x, shape);
    obs->observe(normal_data(400, 0, 3, 10), shape);
    const auto file = testing::temp_file("roundtrip" + std::to_string(tag++));
    obs->save(file);
    auto back = load_observer(file);
    EXPECT_EQ(back->config().kind, kind);
    EXPECT_EQ(back->config().averaging_constant, 0.3f);
    EXPECT_EQ(back->stats(), obs->stats());
    if (cfg.kind == ObserverKind::per_channel_minmax ||
        cfg.kind == ObserverKind::moving_average_per_channel_minmax) {
      EXPECT_EQ(back->channel_qparams(), obs->channel_qparams());
    } else {
      EXPECT_EQ(back->range(), obs->range());
      EXPECT_EQ(back->qparams(), obs->qparams());
    }
    // Resuming gives what continuing would have given.
    const auto more = uniform_data(400, -9, 9, 11);
    obs->observe(more, shape);
    back->observe(more, shape);
    EXPECT_EQ(back->stats(), obs->stats());
    std::filesystem::remove(file);
  }
}

TEST(ObserverFiles, EmptyObserverRoundTrips) {
  const auto file = testing::temp_file("empty");
  MinMaxObserver().save(file);
  auto back = load_observer(file);
  EXPECT_THROW(back->qparams(), Error);
  std::filesystem::remove(file);
}

std::vector<char> read_all(const std::filesystem::path& f) {
  std::ifstream in(f, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_all(const std::filesystem::path& f, const std::vector<char>& bytes) {
  std::ofstream out(f, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST(ObserverFiles, BadFilesAreClearErrors) {
  const auto file = testing::temp_file("bad");
  PerChannelMinMaxObserver obs(QuantSpec{});
  obs.observe(uniform_data(64, -1, 1, 1));
  obs.save(file);
  const std::vector<char> good = read_all(file);
  auto expect_error = [&](const std::vector<char>& bytes, const char* what) {
    write_all(file, bytes);
    try {
      load_observer(file);
      FAIL() << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
    }
  };
  // Truncated at every length.
  for (std::size_t n = 0; n < good.size(); ++n) {
    write_all(file, std::vector<char>(good.begin(), good.begin() + n));
    EXPECT_THROW(load_observer(file), Error) << n;
  }
  expect_error({good.begin(), good.begin() + 40}, "payload");
  auto flipped = good;
  flipped[40] ^= 0x10;
  expect_error(flipped, "checksum");
  auto magic = good;
  magic[0] = 'X';
  expect_error(magic, "not an observer file");
  auto version = good;
  version[8] = 99;
  expect_error(version, "version 99");
  std::filesystem::remove(file);
  expect_error({}, "");  // write_all recreated it empty
  std::filesystem::remove(file);
  EXPECT_THROW(load_observer(file), Error);  // missing
}

SPARQ_INSTANTIATE_FOR_ALL_ISAS(MinMaxIsaTest);

}  // namespace
}  // namespace sparq
