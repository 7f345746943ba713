// Flag parsing shared by the `sparq bench` subcommands (gemm, model): the
// value checks and their limits, with errors that name the subcommand, the
// flag, the value and what was expected.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <exception>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "sparq/error.hpp"

namespace sparq::tool::bench_args {

// Flag limits. Threads: beyond 1024 a run measures the OS scheduler, and
// libgomp allocates per-thread state up front (2^31 threads asked it for
// 481 GB). Repeats: 10^6 medians of even the smallest shape take hours.
constexpr int64_t kMaxThreads = 1024;
constexpr int64_t kMaxRepeat = 1000000;

/// One positive integer up to max_value, else sparq::Error
/// "<command>: <flag> '<text>': expected <what>" or "... is too large".
inline int64_t parse_positive_item(std::string_view command, const std::string& flag,
                                   const std::string& item, const std::string& text,
                                   std::string_view what, int64_t max_value) {
  long long v = 0;
  try {
    std::size_t used = 0;
    v = std::stoll(item, &used);
    if (used != item.size() || v < 1) throw std::invalid_argument(item);
  } catch (const std::exception&) {
    sparq::detail::fail("{}: {} '{}': expected {}", command, flag, text, what);
  }
  if (v > max_value) {
    sparq::detail::fail("{}: {} {} is too large; expected 1 <= value <= {}", command, flag, v,
                        max_value);
  }
  return v;
}

/// "1,4,16" -> {1, 4, 16}: positive integers up to max_value.
inline std::vector<int64_t> parse_positive_list(std::string_view command, const std::string& flag,
                                                const std::string& text, int64_t max_value) {
  std::vector<int64_t> out;
  std::size_t pos = 0;
  while (true) {
    const std::size_t comma = text.find(',', pos);
    const std::string item = text.substr(pos, comma == std::string::npos ? comma : comma - pos);
    out.push_back(parse_positive_item(command, flag, item, text,
                                      "positive integers separated by commas", max_value));
    if (comma == std::string::npos) return out;
    pos = comma + 1;
  }
}

/// One positive integer up to max_value.
inline int64_t parse_positive(std::string_view command, const std::string& flag,
                              const std::string& text, int64_t max_value) {
  return parse_positive_item(command, flag, text, text, "a positive integer", max_value);
}

/// Bytes the kernel may allocate now: MemAvailable, else the free pages.
/// Benchmarks refuse sizes whose buffers cannot fit before allocating any.
inline uint64_t available_memory() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  const long pages = ::sysconf(_SC_AVPHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page)
                               : UINT64_MAX;
}

}  // namespace sparq::tool::bench_args
