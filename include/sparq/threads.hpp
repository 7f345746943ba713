// Thread count for sparq's parallel operations (the GEMM).
//
// sparq uses OpenMP when built with it (SPARQ_OPENMP, on by default); the
// count is set globally here or per call (GemmOptions::threads). Results are
// identical for every thread count: work is split over output tiles only,
// never over the reduction dimension.
#pragma once

namespace sparq {

/// Sets the default thread count for later calls; n >= 1, or 0 to go back to
/// OpenMP's default (OMP_NUM_THREADS or the core count). Throws sparq::Error
/// for n < 0.
void set_num_threads(int n);

/// The thread count a call with threads = 0 uses.
int num_threads();

}  // namespace sparq
