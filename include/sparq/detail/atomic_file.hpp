// Atomic file writes for everything sparq saves (observer state, models).
//
// Declarations only: the implementation (src/io/atomic_file.cpp) uses POSIX
// calls, and installed headers include the standard library and sparq's own
// headers only.
//
// The bytes go to an unnamed temporary file in the destination's directory
// (O_TMPFILE, or a named temporary where the filesystem lacks it), are
// flushed to disk and then linked or renamed over the destination. A crash
// or a full disk therefore leaves either the old file or the complete new
// one, never a truncated mix. The new file keeps the mode of the file it
// replaces; a new file gets 0666 minus the process umask. A named temporary
// left by a killed save is removed by the next save of the same target.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>

namespace sparq::detail {

/// Replaces `path` with `bytes` atomically; sparq::Error naming the path
/// and the failed step otherwise (the destination is then untouched).
void write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes);

inline void write_file_atomically(const std::filesystem::path& path, const std::string& text) {
  write_file_atomically(path, std::as_bytes(std::span<const char>(text.data(), text.size())));
}

}  // namespace sparq::detail
