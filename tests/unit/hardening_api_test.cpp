// Issue 18 regression tests for API and CLI misuse: shape products that
// would overflow (defect 1), the CLI's flag ranges (defect 6, and defect 2's
// `sparq inspect DIR`), and the loose ends of defect 7 (negative
// GemmOptions::threads, out-of-range enum values).
#include <gtest/gtest.h>

#include <filesystem>
#include <limits>
#include <optional>

#include "sparq/gemm/gemm.hpp"
#include "sparq/gemm/packed_weights.hpp"
#include "sparq/isa.hpp"
#include "sparq/threads.hpp"
#include "sparq/quant/quantize.hpp"
#include "support/error_of.hpp"
#include "support/sparq_tool.hpp"

namespace fs = std::filesystem;

namespace {

constexpr int64_t kHuge = (int64_t{1} << 62) + 1;

}  // namespace

// ---------------------------------------------------------------- defect 1
TEST(HardeningApi, ShapesWhoseProductWrapsAreErrors) {
  // {2^62 + 1, 4} has 4 * (2^62 + 1) = 2^64 + 4 elements: the product wraps
  // to 4, the size of the buffers passed.
  std::vector<float> x(4, 0.5f), y(4);
  std::vector<int8_t> q(4);
  const std::vector<int64_t> shape{kHuge, 4};
  sparq::QuantSpec pc;
  pc.granularity = sparq::Granularity::per_channel;
  pc.axis = 1;
  const sparq::ChannelQParams cq{{0.1f, 0.1f, 0.1f, 0.1f}, {0, 0, 0, 0}, 1};
  const char* extent = "shape[0] is 4611686018427387905; expected 1 <= extent <= ";
  EXPECT_ERROR(sparq::quantize<int8_t>(x, shape, pc, cq, q), extent);
  EXPECT_ERROR(sparq::dequantize<int8_t>(q, shape, pc, cq, y), extent);
  EXPECT_ERROR(sparq::fake_quantize(x, shape, pc, cq, y), extent);
  const sparq::Quantizer<int8_t, sparq::Scheme::symmetric, sparq::Granularity::per_channel> qz(cq);
  EXPECT_ERROR(qz.quantize(x, shape, q), extent);
  EXPECT_ERROR(qz.dequantize(q, shape, y), extent);
  // Extents within the limit whose product wraps: 2^32 * 2^32 * 4 = 2^66.
  const std::vector<int64_t> wide{int64_t{1} << 32, int64_t{1} << 32, 4};
  sparq::QuantSpec pc2 = pc;
  pc2.axis = 2;
  const sparq::ChannelQParams cq2{{0.1f, 0.1f, 0.1f, 0.1f}, {0, 0, 0, 0}, 2};
  EXPECT_ERROR(sparq::quantize<int8_t>(x, wide, pc2, cq2, q), "element count exceeds the limit");
  // The per-tensor front end checks the same product.
  const sparq::QuantSpec pt;
  EXPECT_ERROR(sparq::quantize<int8_t>(x, shape, pt, sparq::QParams{0.1f, 0}, q), extent);
  EXPECT_ERROR(sparq::quantize<int8_t>(x, wide, pt, sparq::QParams{0.1f, 0}, q),
               "element count exceeds the limit");
}

TEST(HardeningApi, PackWeightsChecksItsSizes) {
  const std::vector<int8_t> w(16, 1);
  // n = 2^62, k = 2^20: rows x ld overflows int64 (was std::length_error).
  EXPECT_ERROR(sparq::pack_weights(w.data(), int64_t{1} << 62, int64_t{1} << 20,
                                   sparq::WeightLayout::out_in),
               "exceeds the limit");
  EXPECT_ERROR(sparq::pack_weights(w.data(), 4, 4, sparq::WeightLayout::out_in,
                                   std::numeric_limits<int64_t>::max()),
               "exceeds the limit");
  EXPECT_NO_THROW(sparq::pack_weights(w.data(), 4, 4, sparq::WeightLayout::out_in));
}

// ---------------------------------------------------------------- defect 7
TEST(HardeningApi, NegativeThreadsAreErrorsLikeSetNumThreads) {
  const std::vector<int8_t> w(16, 1);
  const sparq::PackedWeights p = sparq::pack_weights(w.data(), 4, 4, sparq::WeightLayout::out_in);
  const std::vector<uint8_t> a(8, 3);
  std::vector<int32_t> c(8);
  EXPECT_ERROR(sparq::gemm(sparq::ActivationsU8{a.data(), 2, 4, 0, 0}, p, sparq::Int32Output{},
                           c.data(), 0, sparq::GemmOptions{-3}),
               "GemmOptions::threads (-3) must be >= 0");
  EXPECT_ERROR(sparq::set_num_threads(-1), "must be >= 0");
  EXPECT_NO_THROW(sparq::gemm(sparq::ActivationsU8{a.data(), 2, 4, 0, 0}, p, sparq::Int32Output{},
                              c.data(), 0, sparq::GemmOptions{0}));
}

TEST(HardeningApi, OutOfRangeEnumValuesAreErrors) {
  const std::vector<int8_t> w(16, 1);
  EXPECT_ERROR(sparq::pack_weights(w.data(), 4, 4, static_cast<sparq::WeightLayout>(7)),
               "layout (7) is not a WeightLayout");
  std::vector<float> x(4, 0.5f);
  std::vector<int8_t> q(4);
  const std::vector<int64_t> shape{4};
  for (int field = 0; field < 3; ++field) {
    sparq::QuantSpec spec;
    if (field == 0) spec.dtype = static_cast<sparq::DType>(2);
    if (field == 1) spec.scheme = static_cast<sparq::Scheme>(9);
    if (field == 2) spec.granularity = static_cast<sparq::Granularity>(5);
    EXPECT_ERROR(spec.validate(), "must each be 0 or 1");
    EXPECT_ERROR(sparq::quantize<int8_t>(x, shape, spec, sparq::QParams{0.1f, 0}, q),
                 "must each be 0 or 1");
  }
}

// ---------------------------------------------------------------- defect 6 (CLI)
namespace {

using sparq::testing::run_tool;
using sparq::testing::sparq_tool;
using sparq::testing::ToolRun;

}  // namespace

TEST(HardeningApi, CliFlagsAreRangeChecked) {
  const auto tool = sparq_tool();
  if (!tool) GTEST_SKIP() << "the sparq program is not built next to this test";
  struct Case {
    std::string args, needle;
  };
  const std::vector<Case> cases = {
      {"bench gemm --threads 1000000",
       "--threads 1000000 is too large; expected 1 <= value <= 1024"},
      {"bench gemm --threads 2147483648", "--threads 2147483648 is too large"},
      {"bench gemm --threads 4294967297", "--threads 4294967297 is too large"},
      {"bench gemm --threads 0", "expected positive integers"},
      {"bench gemm --repeat 3000000000", "--repeat 3000000000 is too large"},
      {"bench gemm --m 99999999999", "--m 99999999999 is too large"},
      {"bench gemm --n 100000000", "MiB of memory are available"},
      {"bench gemm --m 100000000", "MiB of memory are available"},
      {"bench gemm --k 12x", "expected positive integers"},
      {"inspect /", "is a directory; expected a regular file"},
  };
  for (const Case& c : cases) {
    const ToolRun r = run_tool(*tool, c.args);
    EXPECT_EQ(r.status, 1) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.needle), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_EQ(r.output.find("bad_alloc"), std::string::npos) << c.args << "\n" << r.output;
  }
}
