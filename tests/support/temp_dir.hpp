// A fresh directory under the system temporary directory for one test,
// removed with everything in it when the test ends. The name carries the
// process id and a counter so parallel ctest processes, and several
// TempDirs in one test, never share a directory.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

namespace sparq::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "sparq_test") {
    path_ = std::filesystem::temp_directory_path() /
            (prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  const std::filesystem::path& path() const { return path_; }
  /// The names in the directory, sorted (e.g. to check a save left no
  /// temporary file behind).
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path_)) {
      out.push_back(e.path().filename());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  std::filesystem::path path_;
  static inline int counter_ = 0;
};

}  // namespace sparq::testing
