// 2:4 sparse vs dense INT8 GEMM, same shapes, same run, one thread by
// default: N = K in {1024, 4096, 8192}, M in {1, 4, 16, 32, 64, 256}. For each shape:
//   dense/M/N/K            sparq::gemm on the pruned weights packed densely
//   sparse/M/N/K/path      sparq::gemm on the same weights packed sparse,
//                          path 0 = automatic, 1 = direct, 2 = expand
// Counters: GOPS (2*M*N*K per second) and the weight bytes read.
// Usage: bench_sparse_gemm [--benchmark_filter=...] [--benchmark_repetitions=5
//        --benchmark_report_aggregates_only=true]   (medians under load)
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <random>
#include <vector>

#include "sparq/sparq.hpp"

namespace {

struct Weights {
  sparq::PackedWeights dense;
  sparq::PackedSparseWeights sparse;
};

// Random int8 weights pruned 2:4 by magnitude (as a user would get them),
// packed both ways; cached per (N, K): packing 64M weights takes seconds.
const Weights& weights(int64_t n, int64_t k) {
  static std::map<std::pair<int64_t, int64_t>, std::unique_ptr<Weights>> cache;
  auto& slot = cache[{n, k}];
  if (!slot) {
    std::mt19937 rng(42);
    std::uniform_int_distribution<int> dist(-127, 127);
    std::vector<int8_t> w(static_cast<std::size_t>(n * k));
    for (auto& x : w) x = static_cast<int8_t>(dist(rng));
    // Keep the two largest |w| of each group of 4.
    for (std::size_t g = 0; g + 4 <= w.size(); g += 4) {
      int a = 0, b = 1;
      if (std::abs(w[g + b]) > std::abs(w[g + a])) std::swap(a, b);
      for (int t = 2; t < 4; ++t) {
        if (std::abs(w[g + t]) > std::abs(w[g + a])) {
          b = a;
          a = t;
        } else if (std::abs(w[g + t]) > std::abs(w[g + b])) {
          b = t;
        }
      }
      for (int t = 0; t < 4; ++t) {
        if (t != a && t != b) w[g + t] = 0;
      }
    }
    slot = std::make_unique<Weights>();
    slot->dense = sparq::pack_weights(w.data(), n, k, sparq::WeightLayout::out_in);
    slot->sparse = sparq::pack_sparse_weights(
        sparq::compress(w, sparq::WeightShape{n, k, sparq::WeightLayout::out_in}));
  }
  return *slot;
}

template <class W, class Opt>
void run(benchmark::State& state, const W& w, const Opt& opt, std::size_t bytes) {
  const int64_t m = state.range(0);
  const int64_t k = w.k();
  const int64_t n = w.n();
  std::vector<uint8_t> a(static_cast<std::size_t>(m * k), 3);
  std::vector<int32_t> c(static_cast<std::size_t>(m * n));
  const sparq::ActivationsU8 act{a.data(), m, k, 0, 1};
  for (auto _ : state) {
    sparq::gemm(act, w, sparq::Int32Output{}, c.data(), 0, opt);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GOPS"] = benchmark::Counter(2.0 * static_cast<double>(m * n * k),
                                              benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
  state.counters["weight_MB"] = static_cast<double>(bytes) / 1e6;
}

void BM_dense(benchmark::State& state) {
  const Weights& w = weights(state.range(1), state.range(1));
  sparq::GemmOptions o;
  o.threads = 1;
  run(state, w.dense, o, w.dense.packed_bytes());
}

void BM_sparse(benchmark::State& state) {
  const Weights& w = weights(state.range(1), state.range(1));
  sparq::SparseGemmOptions o;
  o.threads = 1;
  o.path = static_cast<sparq::SparsePath>(state.range(2));
  state.SetLabel(sparq::sparse_path_name(sparq::choose_sparse_path(w.sparse, state.range(0), o)));
  run(state, w.sparse, o, w.sparse.packed_bytes());
}

// 4096 and 8192: the shapes (weights beyond L2; 8192 also beyond
// L3). 1024: sparse weights (0.64 MiB) inside L2, where the automatic choice
// halves its M limit for the direct path.
void shapes(benchmark::internal::Benchmark* b, bool paths) {
  for (int64_t nk : {1024, 4096, 8192}) {
    for (int64_t m : {1, 4, 16, 32, 64, 256}) {
      if (paths) {
        for (int64_t p : {0, 1, 2}) b->Args({m, nk, p});
      } else {
        b->Args({m, nk});
      }
    }
  }
}

BENCHMARK(BM_dense)->Apply([](auto* b) { shapes(b, false); }) -> ArgNames({"M", "NK"})
    -> Unit(benchmark::kMillisecond);
BENCHMARK(BM_sparse)->Apply([](auto* b) { shapes(b, true); }) -> ArgNames({"M", "NK", "path"})
    -> Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
