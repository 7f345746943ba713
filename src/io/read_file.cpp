// read_regular_file (io/files.hpp): the one way sparq's loaders read a file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "io/files.hpp"
#include "sparq/error.hpp"
#include "util/checked_size.hpp"

namespace sparq::detail {
namespace {

const char* file_type_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

}  // namespace

std::vector<std::byte> read_regular_file(const std::filesystem::path& path, const char* who) {
  // O_NONBLOCK: opening a FIFO without a writer would otherwise block
  // forever; it has no effect on reading a regular file.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    fail("{} '{}': cannot open the file for reading: {}", who, path.string(), std::strerror(errno));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    fail("{} '{}': cannot stat the file: {}", who, path.string(), std::strerror(errno));
  if (!S_ISREG(st.st_mode)) {
    fail("{} '{}': is {}; expected a regular file", who, path.string(), file_type_name(st.st_mode));
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (st.st_size < 0 || size > kMaxFileBytes) {
    fail("{} '{}': the file has {} bytes; the limit is {} (2^40)", who, path.string(), st.st_size,
         kMaxFileBytes);
  }
  std::vector<std::byte> bytes;
  try {
    bytes.resize(static_cast<std::size_t>(size));
  } catch (const std::bad_alloc&) {
    fail("{} '{}': cannot allocate {} bytes to read the file", who, path.string(), size);
  }
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("{} '{}': read error after {} bytes: {}", who, path.string(), done,
           std::strerror(errno));
    }
    if (n == 0) {
      fail("{} '{}': the file shrank from {} to {} bytes while being read", who, path.string(),
           size, done);
    }
    done += static_cast<std::size_t>(n);
  }
  return bytes;
}

}  // namespace sparq::detail
