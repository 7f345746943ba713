// Internal: reading and writing whole files for the loaders and savers.
#pragma once

#include <cstddef>
#include <filesystem>
#include <vector>

#include "sparq/detail/atomic_file.hpp"

namespace sparq::detail {

/// The whole content of a regular file. A directory, FIFO, socket or device
/// is refused by name without blocking (opened O_NONBLOCK, checked with
/// fstat before any read); a file above kMaxFileBytes (util/checked_size.hpp)
/// or one that cannot be read is a sparq::Error "<who> '<path>': ...". The
/// buffer is never larger than the file.
std::vector<std::byte> read_regular_file(const std::filesystem::path& path, const char* who);

/// Prefix of the named temporaries write_file_atomically uses where the
/// filesystem has no O_TMPFILE: ".<file name>.sparq-tmp.<pid>.<random>".
/// Exposed for the tests of the stale-temporary cleanup.
std::string atomic_temp_prefix(const std::filesystem::path& path);

}  // namespace sparq::detail
