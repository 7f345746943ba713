// Reading Fashion-MNIST (and any other IDX file) for the demo.
//
// IDX is the format of the original MNIST files: a 4-byte magic number
// (two zero bytes, a type code, the number of dimensions), one big-endian
// uint32 per dimension, then the row-major data. Fashion-MNIST ships its
// four files gzip-compressed; zlib's gzread reads both compressed and plain
// files, so either works here.
//
// Every malformed input (bad magic, unsupported type, truncated data,
// trailing bytes, label out of range) is reported as sparq::Error naming the
// file, the value found and what was expected: the demo is also a test of
// sparq on real data, and a silently short read would make every accuracy
// number in its report meaningless.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace fashion {

/// A decoded IDX file of unsigned bytes (type code 0x08, the only type the
/// MNIST family uses).
struct IdxArray {
  std::vector<int64_t> dims;  ///< e.g. {60000, 28, 28} for images, {60000} for labels
  std::vector<uint8_t> data;  ///< row-major, product(dims) bytes
};

/// Parses an uncompressed IDX byte stream; `what` names it in error messages.
IdxArray parse_idx(std::span<const uint8_t> bytes, const std::string& what);

/// Reads (and gunzips when needed) an IDX file.
IdxArray read_idx(const std::filesystem::path& path);

/// One split of an image classification data set: images as row-major
/// count x rows x cols bytes, labels as bytes in [0, classes).
struct Dataset {
  int64_t count = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<uint8_t> images;
  std::vector<uint8_t> labels;

  int64_t pixels() const { return rows * cols; }
  /// The first n examples (n clamped to count): used by --quick mode.
  Dataset head(int64_t n) const;
};

/// Pairs an images file with a labels file and checks they agree (same
/// count, 3-dimensional images, labels < classes).
Dataset make_dataset(IdxArray images, IdxArray labels, const std::string& what, int classes = 10);

/// The directory Debian's dataset-fashion-mnist package installs to, or the
/// FASHION_MNIST_DIR environment variable when set.
std::filesystem::path default_data_dir();

/// Loads split "train" or "t10k" from dir ({split}-images-idx3-ubyte.gz and
/// {split}-labels-idx1-ubyte.gz). When a file is missing the error says
/// which one and how to get it (apt-get install dataset-fashion-mnist, or
/// FASHION_MNIST_DIR / --data).
Dataset load_fashion_mnist(const std::filesystem::path& dir, const std::string& split);

/// The ten class names, index = label.
const char* class_name(int label);

}  // namespace fashion
