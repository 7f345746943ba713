// Global thread count for the GEMM (see sparq/threads.hpp).
#include "sparq/threads.hpp"

#include <atomic>

#include "sparq/error.hpp"

#if defined(SPARQ_WITH_OPENMP)
#include <omp.h>
#endif

namespace sparq {
namespace {
std::atomic<int> g_threads{0};
}

void set_num_threads(int n) {
  if (n < 0) detail::fail("set_num_threads: n ({}) must be >= 0 (0: OpenMP's default)", n);
  g_threads.store(n, std::memory_order_relaxed);
}

int num_threads() {
  const int n = g_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
#if defined(SPARQ_WITH_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace sparq
