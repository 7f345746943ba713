#include "idx.hpp"

#include <zlib.h>

#include <array>
#include <cstdlib>
#include <memory>

#include "sparq/error.hpp"

namespace fashion {

using sparq::detail::fail;

IdxArray parse_idx(std::span<const uint8_t> bytes, const std::string& what) {
  if (bytes.size() < 4) {
    fail("IDX file {}: {} bytes is too short for the 4-byte header (expected >= 4)", what,
         bytes.size());
  }
  if (bytes[0] != 0 || bytes[1] != 0) {
    fail(
        "IDX file {}: magic starts with bytes {:#04x} {:#04x} (expected 0x00 0x00): not an "
        "IDX file (or a gzip file that was not decompressed)",
        what, bytes[0], bytes[1]);
  }
  if (bytes[2] != 0x08) {
    fail("IDX file {}: element type code {:#04x} (expected 0x08, unsigned byte)", what, bytes[2]);
  }
  const int ndims = bytes[3];
  if (ndims < 1 || ndims > 4) {
    fail("IDX file {}: {} dimensions (expected 1 to 4)", what, ndims);
  }
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(ndims);
  if (bytes.size() < header) {
    fail("IDX file {}: {} bytes is too short for a header of {} dimensions (expected >= {})", what,
         bytes.size(), ndims, header);
  }
  IdxArray out;
  uint64_t total = 1;
  for (int d = 0; d < ndims; ++d) {
    const uint8_t* p = bytes.data() + 4 + 4 * d;
    const uint32_t n =
        (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
    out.dims.push_back(n);
    total *= n;
    if (total > (uint64_t{1} << 34)) {
      fail(
          "IDX file {}: dimensions multiply to more than 2^34 elements (expected a data set "
          "that fits in memory)",
          what);
    }
  }
  if (bytes.size() - header != total) {
    fail(
        "IDX file {}: {} data bytes after the header (expected {} = product of the "
        "dimensions): the file is truncated or has trailing bytes",
        what, bytes.size() - header, total);
  }
  out.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return out;
}

IdxArray read_idx(const std::filesystem::path& path) {
  // gzopen reads plain files unchanged, so test fixtures need not be gzipped.
  std::unique_ptr<gzFile_s, int (*)(gzFile)> file(gzopen(path.c_str(), "rb"), gzclose);
  if (!file) {
    fail("IDX file {}: cannot open it (expected a readable file)", path.string());
  }
  std::vector<uint8_t> bytes;
  std::array<uint8_t, 1 << 16> chunk{};
  for (;;) {
    const int n = gzread(file.get(), chunk.data(), static_cast<unsigned>(chunk.size()));
    if (n < 0) {
      int code = 0;
      const char* msg = gzerror(file.get(), &code);
      fail("IDX file {}: decompression failed: {} (expected a valid gzip or plain file)",
           path.string(), msg ? msg : "unknown zlib error");
    }
    if (n == 0) break;
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + n);
  }
  return parse_idx(bytes, path.string());
}

Dataset Dataset::head(int64_t n) const {
  Dataset d;
  d.count = std::min(n, count);
  d.rows = rows;
  d.cols = cols;
  d.images.assign(images.begin(), images.begin() + d.count * pixels());
  d.labels.assign(labels.begin(), labels.begin() + d.count);
  return d;
}

Dataset make_dataset(IdxArray images, IdxArray labels, const std::string& what, int classes) {
  if (images.dims.size() != 3) {
    fail("{}: images have {} dimensions (expected 3: count x rows x cols)", what,
         images.dims.size());
  }
  if (labels.dims.size() != 1) {
    fail("{}: labels have {} dimensions (expected 1: count)", what, labels.dims.size());
  }
  if (images.dims[0] != labels.dims[0]) {
    fail("{}: {} images but {} labels (expected equal counts)", what, images.dims[0],
         labels.dims[0]);
  }
  for (std::size_t i = 0; i < labels.data.size(); ++i) {
    if (labels.data[i] >= classes) {
      fail("{}: label #{} is {} (expected < {})", what, i, labels.data[i], classes);
    }
  }
  Dataset d;
  d.count = images.dims[0];
  d.rows = images.dims[1];
  d.cols = images.dims[2];
  d.images = std::move(images.data);
  d.labels = std::move(labels.data);
  return d;
}

std::filesystem::path default_data_dir() {
  if (const char* env = std::getenv("FASHION_MNIST_DIR"); env && *env) return env;
  return "/usr/share/datasets/fashion-mnist";
}

Dataset load_fashion_mnist(const std::filesystem::path& dir, const std::string& split) {
  if (split != "train" && split != "t10k") {
    fail("load_fashion_mnist: split '{}' (expected 'train' or 't10k')", split);
  }
  const std::filesystem::path images = dir / (split + "-images-idx3-ubyte.gz");
  const std::filesystem::path labels = dir / (split + "-labels-idx1-ubyte.gz");
  for (const auto& p : {images, labels}) {
    if (!std::filesystem::exists(p)) {
      fail(
          "Fashion-MNIST file {} is missing (expected the files of Debian's "
          "dataset-fashion-mnist package: run 'sudo apt-get install dataset-fashion-mnist', "
          "or point FASHION_MNIST_DIR / --data at a directory holding "
          "{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte.gz)",
          p.string());
    }
  }
  return make_dataset(read_idx(images), read_idx(labels), "Fashion-MNIST " + split);
}

const char* class_name(int label) {
  static const char* const names[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return (label >= 0 && label < 10) ? names[label] : "?";
}

}  // namespace fashion
