// A fresh directory under the system temporary directory for one test,
// removed with everything in it when the test ends. The name carries the
// test suite, the process id and a counter so parallel ctest processes, and several
// TempDirs in one test, never share a directory.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

namespace sparq::testing {

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("sparq_" + suite_name() + "_" + std::to_string(::getpid()) + "_" +
             std::to_string(counter_++));
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
  // The running test's suite ("HardeningFiles"), so a directory a crashed
  // run leaves behind says where it came from.
  static std::string suite_name() {
    const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
    return test ? test->test_suite_name() : "test";
  }

  std::filesystem::path path_;
  static inline int counter_ = 0;
};

}  // namespace sparq::testing
