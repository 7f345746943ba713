// Thread count for sparq's parallel operations (the GEMM).
//
// sparq uses OpenMP when built with it (SPARQ_OPENMP, on by default); the
// count is set globally here or per call (GemmOptions::threads). Results are
// identical for every thread count: work is split over output tiles only,
// never over the reduction dimension. A call whose work is small (under
// about 4 M multiply-adds per thread) uses fewer threads than allowed, since
// waking a thread team costs more than it saves. Without OpenMP at build
// time every call runs on the calling thread, whatever the setting.
#pragma once

namespace sparq {

/// Sets the default thread count for later calls; n >= 1, or 0 to go back to
/// OpenMP's default (OMP_NUM_THREADS or the core count). Throws sparq::Error
/// for n < 0.
void set_num_threads(int n);

/// The thread count a call with threads = 0 uses.
int num_threads();

}  // namespace sparq
