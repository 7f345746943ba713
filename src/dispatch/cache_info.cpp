#include "dispatch/cache_info.hpp"

#if defined(__linux__)
#include <unistd.h>
#endif

namespace sparq::detail {

int64_t l2_cache_bytes() noexcept {
  static const int64_t bytes = [] {
    constexpr int64_t kDefault = 1024 * 1024;
#if defined(__linux__) && defined(_SC_LEVEL2_CACHE_SIZE)
    const long v = sysconf(_SC_LEVEL2_CACHE_SIZE);
    // Sanity bounds: a value outside [64 KiB, 64 MiB] is a misreport.
    if (v >= 64 * 1024 && v <= 64 * 1024 * 1024) return static_cast<int64_t>(v);
#endif
    return kDefault;
  }();
  return bytes;
}

}  // namespace sparq::detail
