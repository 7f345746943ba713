// `sparq bench gemm --sparse` support: times the 2:4 sparse GEMM on one
// shape against the dense GEMM on the same pruned weights, and reports
// which sparse path ran. tools/commands/bench.cpp turns a SparseBenchResult
// into the JSON fields `sparse_gops` and `sparse_path` of its shape record.
//
//   const auto w = sparq::tool::make_sparse_bench_weights(4096, 4096);
//   for (int64_t m : {1, 4, 16, 64, 256}) {
//     const auto r = sparq::tool::bench_sparse_gemm(w, m, /*threads=*/1);
//     // r.sparse_gops, r.sparse_path ("direct" / "expand"), r.dense_gops
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "sparq/gemm/packed_weights.hpp"
#include "sparq/gemm/sparse_gemm.hpp"

namespace sparq::tool {

/// Random int8 weights pruned 2:4 by magnitude, packed densely and sparse
/// (make once per N x K: packing 8192 x 8192 takes seconds).
struct SparseBenchWeights {
  PackedWeights dense;
  PackedSparseWeights sparse;
  double pack_ms = 0;  ///< pack_sparse_weights time
};
SparseBenchWeights make_sparse_bench_weights(int64_t n, int64_t k, uint32_t seed = 42);

struct SparseBenchOptions {
  int repeat = 5;             ///< timings; the median is reported
  double min_seconds = 0.05;  ///< each timing loops the call for at least this long
  /// Time with the process CPU clock instead of the wall clock: on a shared
  /// machine it counts only the time this process ran (one thread only).
  bool cpu_clock = false;
  bool measure_dense = true;  ///< also time the dense gemm on the same weights
  SparsePath path = SparsePath::automatic;
};

struct SparseBenchResult {
  int64_t m = 0, n = 0, k = 0;
  int threads = 1;
  double sparse_gops = 0;            ///< 2*M*N*K / median seconds
  std::string sparse_path;           ///< "direct" or "expand": the path that ran
  std::string sparse_kernel;         ///< the sparse microkernel (direct) or expand kernel
  std::optional<double> dense_gops;  ///< same shape, dense packed weights
  std::size_t sparse_bytes = 0;      ///< PackedSparseWeights::packed_bytes()
  std::size_t dense_bytes = 0;       ///< PackedWeights::packed_bytes()
  double pack_ms = 0;
};

/// Times gemm(u8 activations (M x K), weights) -> int32 for one shape.
SparseBenchResult bench_sparse_gemm(const SparseBenchWeights& weights, int64_t m, int threads,
                                    const SparseBenchOptions& options = {});

/// The same record as one JSON object (keys as the fields above).
std::string to_json(const SparseBenchResult& r);

}  // namespace sparq::tool
