// Atomic file writes for everything sparq saves (observer state, models).
//
// The bytes go to a temporary file in the destination's directory, are
// flushed to disk (fsync), and the temporary is renamed over the
// destination. A crash or a full disk therefore leaves either the old file
// or the complete new one, never a truncated mix.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>

#include "sparq/error.hpp"

namespace sparq::detail {

inline void write_file_atomically(const std::filesystem::path& path,
                                  std::span<const std::byte> bytes) {
  namespace fs = std::filesystem;
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  // Built with += rather than "." + name + ...: GCC 12 gives a false
  // -Wrestrict warning on the operator+ chain (GCC bug 105329).
  std::string name = ".";
  name += path.filename().string();
  name += ".tmp-XXXXXX";
  std::string tmpl = (dir / name).string();
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) {
    fail("write {}: cannot create a temporary file in '{}': {}", path.string(), dir.string(),
         std::strerror(errno));
  }
  auto abandon = [&](const char* what) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmpl.c_str());
    fail("write {}: {} failed: {}", path.string(), what, std::strerror(err));
  };
  const std::byte* p = bytes.data();
  std::size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      abandon("write");
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::fchmod(fd, 0644) != 0) abandon("fchmod");
  if (::fsync(fd) != 0) abandon("fsync");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmpl.c_str());
    fail("write {}: close failed: {}", path.string(), std::strerror(err));
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmpl.c_str());
    fail("write {}: rename of the temporary file failed: {}", path.string(), std::strerror(err));
  }
}

inline void write_file_atomically(const std::filesystem::path& path, const std::string& text) {
  write_file_atomically(path, std::as_bytes(std::span<const char>(text.data(), text.size())));
}

}  // namespace sparq::detail
