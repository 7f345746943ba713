// write_file_atomically (include/sparq/detail/atomic_file.hpp): POSIX only
// here, so that the installed header needs no system headers.
//
// Preferred path: an unnamed O_TMPFILE file in the destination's directory,
// written, fsync'ed, then linked into place (a new destination) or linked
// under a temporary name and renamed over the old file. A crash before the
// link leaves nothing: the kernel frees an unnamed file with its last
// descriptor. Filesystems without O_TMPFILE (or without /proc to link it)
// get a named temporary instead; one left behind by a killed save carries
// the dead process's id and is removed by the next save of the same target.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "io/files.hpp"
#include "sparq/error.hpp"

namespace sparq::detail {
namespace {

namespace fs = std::filesystem;

/// Closes the descriptor it holds on every path out, exceptions included.
struct FdGuard {
  int fd = -1;
  explicit FdGuard(int f) : fd(f) {}
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

[[noreturn]] void fail_step(const fs::path& path, const char* step, int err) {
  fail("write '{}': {} failed: {}", path.string(), step, std::strerror(err));
}

void write_all(int fd, std::span<const std::byte> bytes, const fs::path& path) {
  const std::byte* p = bytes.data();
  std::size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_step(path, "write", errno);
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

/// Permission bits of the file being replaced (a regular file), if any. The
/// replacement gets them, so a 0600 model stays 0600. Set-id and sticky bits
/// are not carried over.
std::optional<mode_t> existing_mode(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return st.st_mode & 0777;
  return std::nullopt;
}

/// Brings the written file to its final mode and to disk.
void finish(int fd, std::optional<mode_t> mode, const fs::path& path) {
  if (mode && ::fchmod(fd, *mode) != 0) fail_step(path, "fchmod", errno);
  if (::fsync(fd) != 0) fail_step(path, "fsync", errno);
}

/// Makes the new directory entry durable too; some filesystems cannot sync
/// a directory, which loses nothing already written, so errors are ignored.
void sync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

/// A fresh temporary name next to `path`: prefix + "<pid>.<counter><time>".
fs::path temp_name(const fs::path& dir, const fs::path& path) {
  static std::atomic<uint64_t> counter{0};
  const auto t = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return dir / fmt::format("{}{}.{:x}{:x}", atomic_temp_prefix(path), ::getpid(), counter++,
                           t & 0xffffff);
}

bool process_alive(long pid) { return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM; }

/// Removes named temporaries of `path` whose writing process no longer
/// exists (a save killed mid-way). Another process's live save keeps its
/// temporary; so does this process's own.
void remove_stale_temporaries(const fs::path& dir, const fs::path& path) {
  const std::string prefix = atomic_temp_prefix(path);
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name(e->d_name);
    if (!name.starts_with(prefix)) continue;
    const std::string_view rest = name.substr(prefix.size());
    long pid = 0;
    const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), pid);
    if (ec != std::errc() || end == rest.data() || *end != '.' || pid <= 0) continue;
    // Exactly "<pid>.<hex>": the temporary of a target whose own name
    // extends this one (".m.sparq-tmp.5.sparq-tmp.<pid>.<hex>") is not ours.
    const std::string_view suffix = rest.substr(static_cast<std::size_t>(end - rest.data()) + 1);
    if (suffix.empty() || suffix.find_first_not_of("0123456789abcdef") != std::string_view::npos)
      continue;
    if (!process_alive(pid)) (void)::unlinkat(::dirfd(d), e->d_name, 0);
  }
  ::closedir(d);
}

/// Renames `tmp` over `path`, removing `tmp` if that fails.
void rename_into_place(const fs::path& tmp, const fs::path& path) {
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail("write '{}': rename of the temporary file failed: {}", path.string(), std::strerror(err));
  }
}

/// The O_TMPFILE path; false when this filesystem or system cannot do it
/// (the caller then uses a named temporary), sparq::Error for a write error.
bool write_unnamed(const fs::path& dir, const fs::path& path, std::span<const std::byte> bytes,
                   std::optional<mode_t> mode) {
#ifdef O_TMPFILE
  // 0666 is reduced by the umask in the kernel, as for any new file.
  FdGuard fd{::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666)};
  if (fd.fd < 0) return false;
  write_all(fd.fd, bytes, path);
  finish(fd.fd, mode, path);
  const std::string self = "/proc/self/fd/" + std::to_string(fd.fd);
  // A new destination is linked directly: atomic, and nothing else appears.
  if (!mode && ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) == 0)
    return true;
  if (!mode && errno != EEXIST) return false;  // no /proc, or linking unsupported
  // Replacing a file needs rename; the named link exists only between these
  // two calls (a crash there leaves it to the stale-temporary cleanup).
  for (int attempt = 0; attempt < 16; ++attempt) {
    const fs::path tmp = temp_name(dir, path);
    if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, tmp.c_str(), AT_SYMLINK_FOLLOW) == 0) {
      rename_into_place(tmp, path);
      return true;
    }
    if (errno != EEXIST) return false;
  }
  return false;
#else
  (void)dir, (void)path, (void)bytes, (void)mode;
  return false;
#endif
}

}  // namespace

std::string atomic_temp_prefix(const std::filesystem::path& path) {
  // += rather than an operator+ chain: GCC 12 warns falsely (-Wrestrict,
  // GCC bug 105329) on the chain.
  std::string prefix = ".";
  prefix += path.filename().string();
  prefix += ".sparq-tmp.";
  return prefix;
}

void write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  if (path.filename().empty()) {
    fail("write '{}': the path names no file; expected a file name", path.string());
  }
  const std::optional<mode_t> mode = existing_mode(path);
  remove_stale_temporaries(dir, path);
  if (write_unnamed(dir, path, bytes, mode)) {
    sync_dir(dir);
    return;
  }
  // Named temporary. O_EXCL and 0666 (less the umask, applied by the kernel)
  // instead of mkstemp's fixed 0600.
  fs::path tmp;
  int raw = -1;
  for (int attempt = 0; attempt < 16 && raw < 0; ++attempt) {
    tmp = temp_name(dir, path);
    raw = ::open(tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
    if (raw < 0 && errno != EEXIST) break;
  }
  if (raw < 0) {
    fail("write '{}': cannot create a temporary file in '{}': {}", path.string(), dir.string(),
         std::strerror(errno));
  }
  try {
    FdGuard fd{raw};
    write_all(fd.fd, bytes, path);
    finish(fd.fd, mode, path);
    if (::close(fd.fd) != 0) {
      fd.fd = -1;
      fail_step(path, "close", errno);
    }
    fd.fd = -1;
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  rename_into_place(tmp, path);
  sync_dir(dir);
}

}  // namespace sparq::detail
