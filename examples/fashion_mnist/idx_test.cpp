// Tests of the Fashion-MNIST demo's IDX reader (examples/fashion_mnist/idx.*):
// hand-made IDX byte streams (valid and every malformation the reader must
// refuse), a gzip round trip through zlib, and the real data set when
// Debian's dataset-fashion-mnist package is installed.
#include <gtest/gtest.h>

#include <zlib.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <numeric>
#include <vector>

#include "idx.hpp"
#include "sparq/error.hpp"

namespace {

std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data,
                               uint8_t type = 0x08) {
  std::vector<uint8_t> b = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    b.push_back(static_cast<uint8_t>(d >> 24));
    b.push_back(static_cast<uint8_t>(d >> 16));
    b.push_back(static_cast<uint8_t>(d >> 8));
    b.push_back(static_cast<uint8_t>(d));
  }
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

std::string error_of(const std::vector<uint8_t>& bytes) {
  try {
    fashion::parse_idx(bytes, "test");
  } catch (const sparq::Error& e) {
    return e.what();
  }
  return "";
}

TEST(FashionIdx, ParsesDimensionsBigEndianAndData) {
  std::vector<uint8_t> data(2 * 3 * 300);
  std::iota(data.begin(), data.end(), uint8_t{0});
  const auto a = fashion::parse_idx(idx_bytes({2, 3, 300}, data), "t");
  EXPECT_EQ(a.dims, (std::vector<int64_t>{2, 3, 300}));  // 300 needs two bytes
  EXPECT_EQ(a.data, data);
}

TEST(FashionIdx, RefusesMalformedInput) {
  EXPECT_NE(error_of({0, 0, 8}).find("too short"), std::string::npos);
  EXPECT_NE(error_of({0x1f, 0x8b, 8, 1, 0, 0, 0, 0}).find("not an IDX file"), std::string::npos);
  EXPECT_NE(error_of(idx_bytes({1}, {0, 0, 0, 0}, 0x0d)).find("0x0d"), std::string::npos);
  EXPECT_NE(error_of({0, 0, 8, 0}).find("0 dimensions"), std::string::npos);
  EXPECT_NE(error_of({0, 0, 8, 2, 0, 0, 0, 1}).find("header of 2 dimensions"), std::string::npos);
  EXPECT_NE(error_of(idx_bytes({4}, {1, 2, 3})).find("truncated"), std::string::npos);
  EXPECT_NE(error_of(idx_bytes({2}, {1, 2, 3})).find("trailing"), std::string::npos);
  EXPECT_EQ(error_of(idx_bytes({3}, {1, 2, 3})), "");
}

TEST(FashionIdx, DatasetChecksCountsAndLabels) {
  auto images = fashion::parse_idx(idx_bytes({2, 1, 2}, {1, 2, 3, 4}), "i");
  auto labels = fashion::parse_idx(idx_bytes({2}, {9, 0}), "l");
  const auto d = fashion::make_dataset(images, labels, "t");
  EXPECT_EQ(d.count, 2);
  EXPECT_EQ(d.pixels(), 2);
  EXPECT_EQ(d.head(1).images, (std::vector<uint8_t>{1, 2}));
  EXPECT_EQ(d.head(5).count, 2);
  auto bad_labels = fashion::parse_idx(idx_bytes({2}, {9, 10}), "l");
  EXPECT_THROW(fashion::make_dataset(images, bad_labels, "t"), sparq::Error);
  auto short_labels = fashion::parse_idx(idx_bytes({1}, {3}), "l");
  EXPECT_THROW(fashion::make_dataset(images, short_labels, "t"), sparq::Error);
}

TEST(FashionIdx, ReadsGzipAndPlainFiles) {
  const auto dir = std::filesystem::temp_directory_path() / "sparq_fashion_idx_test";
  std::filesystem::create_directories(dir);
  const std::vector<uint8_t> bytes = idx_bytes({5}, {10, 20, 30, 40, 50});
  const auto gz = dir / "a.gz";
  gzFile f = gzopen(gz.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  gzclose(f);
  EXPECT_EQ(fashion::read_idx(gz).data, (std::vector<uint8_t>{10, 20, 30, 40, 50}));
  EXPECT_THROW(fashion::read_idx(dir / "missing.gz"), sparq::Error);
  std::filesystem::remove_all(dir);
}

TEST(FashionIdx, MissingDataSetNamesTheDebianPackage) {
  try {
    fashion::load_fashion_mnist("/nonexistent-sparq-dir", "train");
    FAIL() << "expected sparq::Error";
  } catch (const sparq::Error& e) {
    EXPECT_NE(std::string(e.what()).find("dataset-fashion-mnist"), std::string::npos) << e.what();
  }
  EXPECT_THROW(fashion::load_fashion_mnist("/nonexistent-sparq-dir", "valid"), sparq::Error);
}

TEST(FashionIdx, RealDataSet) {
  const auto dir = fashion::default_data_dir();
  if (!std::filesystem::exists(dir / "t10k-labels-idx1-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
  }
  const auto test = fashion::load_fashion_mnist(dir, "t10k");
  EXPECT_EQ(test.count, 10000);
  EXPECT_EQ(test.rows, 28);
  EXPECT_EQ(test.cols, 28);
  // The test split is balanced: 1,000 images per class.
  std::array<int, 10> per_class{};
  for (uint8_t l : test.labels) ++per_class[l];
  for (int c = 0; c < 10; ++c) EXPECT_EQ(per_class[static_cast<std::size_t>(c)], 1000) << c;
}

}  // namespace
