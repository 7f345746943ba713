// See bench_sparse.hpp.
#include "bench_sparse.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <random>
#include <vector>

#include <time.h>

#include "kernels/sparse_gemm_kernels.hpp"
#include "sparq/isa.hpp"
#include "sparq/sparse/compressed.hpp"

namespace sparq::tool {
namespace {

double now(bool cpu) {
  timespec ts{};
  clock_gettime(cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double median_seconds(const std::function<void()>& fn, const SparseBenchOptions& o) {
  fn();  // warm-up: page faults, caches, thread pool
  std::vector<double> times;
  for (int r = 0; r < std::max(1, o.repeat); ++r) {
    int iters = 0;
    const double t0 = now(o.cpu_clock);
    double t = t0;
    do {
      fn();
      ++iters;
      t = now(o.cpu_clock);
    } while (t - t0 < o.min_seconds);
    times.push_back((t - t0) / iters);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

SparseBenchWeights make_sparse_bench_weights(int64_t n, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(-127, 127);
  std::vector<int8_t> w(static_cast<std::size_t>(n * k));
  for (auto& x : w) x = static_cast<int8_t>(dist(rng));
  // Magnitude 2:4 pruning along K (rows are K long, so groups never straddle
  // rows when 4 | K; otherwise compress() pads the tail).
  const WeightShape shape{n, k, WeightLayout::out_in};
  for (int64_t o = 0; o < n; ++o) {
    for (int64_t g = 0; g < k; g += 4) {
      int8_t* p = w.data() + o * k + g;
      const int len = static_cast<int>(std::min<int64_t>(4, k - g));
      if (len <= 2) continue;
      int keep0 = 0;
      for (int t = 1; t < len; ++t) {
        if (std::abs(p[t]) > std::abs(p[keep0])) keep0 = t;
      }
      int keep1 = keep0 == 0 ? 1 : 0;
      for (int t = 0; t < len; ++t) {
        if (t != keep0 && std::abs(p[t]) > std::abs(p[keep1])) keep1 = t;
      }
      for (int t = 0; t < len; ++t) {
        if (t != keep0 && t != keep1) p[t] = 0;
      }
    }
  }
  SparseBenchWeights out;
  out.dense = pack_weights(w.data(), n, k, WeightLayout::out_in);
  PruneOptions opt;
  opt.tail = TailPolicy::pad_zeros;
  const auto t0 = std::chrono::steady_clock::now();
  out.sparse = pack_sparse_weights(compress(w, shape, opt));
  out.pack_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

SparseBenchResult bench_sparse_gemm(const SparseBenchWeights& w, int64_t m, int threads,
                                    const SparseBenchOptions& o) {
  SparseBenchResult r;
  r.m = m;
  r.n = w.sparse.n();
  r.k = w.sparse.k();
  r.threads = threads;
  r.sparse_bytes = w.sparse.packed_bytes();
  r.dense_bytes = w.dense.packed_bytes();
  r.pack_ms = w.pack_ms;
  std::vector<uint8_t> a(static_cast<std::size_t>(m * r.k));
  std::mt19937 rng(7);
  for (auto& x : a) x = static_cast<uint8_t>(rng());
  std::vector<int32_t> c(static_cast<std::size_t>(m * r.n));
  const ActivationsU8 act{a.data(), m, r.k, 0, 128};
  const double ops = 2.0 * static_cast<double>(m) * static_cast<double>(r.n * r.k);
  SparseGemmOptions so;
  so.threads = threads;
  so.path = o.path;
  SparsePath ran = SparsePath::automatic;
  r.sparse_gops =
      ops / median_seconds([&] { ran = gemm(act, w.sparse, Int32Output{}, c.data(), 0, so); }, o) /
      1e9;
  r.sparse_path = sparse_path_name(ran);
  const detail::SparseGemmKernels& kern = detail::sparse_gemm_kernels(active_isa());
  r.sparse_kernel = ran == SparsePath::direct ? kern.ukernel_name : kern.expand_name;
  if (o.measure_dense) {
    GemmOptions go;
    go.threads = threads;
    r.dense_gops =
        ops / median_seconds([&] { gemm(act, w.dense, Int32Output{}, c.data(), 0, go); }, o) / 1e9;
  }
  return r;
}

std::string to_json(const SparseBenchResult& r) {
  return fmt::format(
      "{{\"m\": {}, \"n\": {}, \"k\": {}, \"threads\": {}, \"sparse_gops\": {:.2f}, "
      "\"sparse_path\": \"{}\", \"sparse_kernel\": \"{}\", \"dense_gops\": {}, "
      "\"sparse_bytes\": {}, \"dense_bytes\": {}, \"sparse_pack_ms\": {:.2f}}}",
      r.m, r.n, r.k, r.threads, r.sparse_gops, r.sparse_path, r.sparse_kernel,
      r.dense_gops ? fmt::format("{:.2f}", *r.dense_gops) : std::string("null"), r.sparse_bytes,
      r.dense_bytes, r.pack_ms);
}

}  // namespace sparq::tool
