// Cache sizes of this CPU, read once. Internal to src/ (and tests, which size
// their cases from it instead of assuming a cache size: docs/design.md rule 12).
#pragma once

#include <cstdint>

namespace sparq::detail {

/// Bytes of L2 per core as the OS reports it (glibc's sysconf, which reads
/// cpuid on x86 and sysfs on ARM), or 1 MiB when it reports nothing (qemu,
/// other C libraries): the size the kernel tables' limits were measured at.
int64_t l2_cache_bytes() noexcept;

}  // namespace sparq::detail
