// AlignedBytes' constructor (include/sparq/detail/packed_weights_data.hpp),
// out of line so that the installed header needs no POSIX header.
#include <cstring>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "sparq/detail/packed_weights_data.hpp"

namespace sparq::detail {

AlignedBytes::AlignedBytes(std::size_t size)
    : data_(static_cast<int8_t*>(::operator new[](size == 0 ? 1 : size, alignment(size))),
            Free{alignment(size)}),
      size_(size) {
#if defined(__linux__)
  if (size >= kHuge) madvise(data_.get(), size, MADV_HUGEPAGE);
#endif
  std::memset(data_.get(), 0, size);
}

}  // namespace sparq::detail
