// N:M pruning throughput: masks, compression and the permutation search.
//
//   bench_sparse_prune --benchmark_filter=4096   (the 4096x4096 targets)
//
// Single thread (nothing here is threaded). Items/s = weights processed.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "sparq/sparse/sparse.hpp"

namespace {

using sparq::WeightLayout;
using sparq::WeightShape;

std::vector<float> weights(int64_t outputs, int64_t inputs) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(static_cast<std::size_t>(outputs * inputs));
  for (float& x : w) x = normal(rng);
  return w;
}

WeightShape shape_of(const benchmark::State& state) {
  return {state.range(0), state.range(0),
          state.range(1) == 0 ? WeightLayout::out_in : WeightLayout::in_out};
}

void finish(benchmark::State& state, const WeightShape& s) {
  state.SetItemsProcessed(state.iterations() * s.size());
  state.SetBytesProcessed(state.iterations() * s.size() * static_cast<int64_t>(sizeof(float)));
  state.SetLabel(s.layout == WeightLayout::out_in ? "out_in" : "in_out");
}

// Times f(w, s) on the state's matrix; DoNotOptimize keeps each result.
template <class F>
void time_on_matrix(benchmark::State& state, F&& f) {
  const WeightShape s = shape_of(state);
  const auto w = weights(s.outputs, s.inputs);
  for (auto _ : state) benchmark::DoNotOptimize(f(w, s));
  finish(state, s);
}

// The benchmarks that time one call f(w, s) on a 4096 x 4096 matrix
// (time_on_matrix), registered under the names BENCHMARK would give them.
constexpr bool kBothLayouts = true, kOutIn = false;

template <class F>
void one_call(const char* name, bool both_layouts, F f) {
  auto* b = benchmark::RegisterBenchmark(
      name, [f](benchmark::State& state) { time_on_matrix(state, f); });
  b->Args({4096, 0});
  if (both_layouts) b->Args({4096, 1});
  b->Unit(benchmark::kMillisecond);
}

[[maybe_unused]] const bool kOneCallRegistered = [] {
  // The 20 ms target: 2:4 mask + compression of a 4096x4096 fp32 matrix, in
  // one pass (prune_and_compress) ...
  one_call("BM_PruneAndCompress", kBothLayouts,
           [](const auto& w, const auto& s) { return sparq::prune_and_compress(w, s); });
  // ... and in two steps (nm_mask, then compress at the mask's positions).
  one_call("BM_MaskThenCompress", kBothLayouts,
           [](const auto& w, const auto& s) { return sparq::compress(w, sparq::nm_mask(w, s)); });
  one_call("BM_NmMask", kBothLayouts,
           [](const auto& w, const auto& s) { return sparq::nm_mask(w, s); });
  one_call("BM_TransposableMask", kOutIn,
           [](const auto& w, const auto& s) { return sparq::transposable_mask(w, s); });
  return true;
}();

// BM_PruneAndCompress into a reused object (no page faults for a fresh 36 MB
// result).
void BM_PruneAndCompressReuse(benchmark::State& state) {
  const WeightShape s = shape_of(state);
  const auto w = weights(s.outputs, s.inputs);
  sparq::CompressedNM<float> c;
  for (auto _ : state) {
    sparq::prune_and_compress(w, s, {}, c);
    benchmark::DoNotOptimize(c.values.data());
  }
  finish(state, s);
}
BENCHMARK(BM_PruneAndCompressReuse)
    ->Args({4096, 0})
    ->Args({4096, 1})
    ->Unit(benchmark::kMillisecond);

void BM_Decompress(benchmark::State& state) {
  const WeightShape s = shape_of(state);
  const auto c = sparq::prune_and_compress(weights(s.outputs, s.inputs), s);
  for (auto _ : state) benchmark::DoNotOptimize(sparq::decompress(c, s.layout));
  finish(state, s);
}
BENCHMARK(BM_Decompress)->Args({4096, 0})->Unit(benchmark::kMillisecond);

// The permutation search on 1024x1024 (2:4), run to convergence; counters
// report the retained L1 gain and the work done.
void BM_PermutationSearch(benchmark::State& state) {
  const WeightShape s = shape_of(state);
  const auto w = weights(s.outputs, s.inputs);
  sparq::PermutationResult r;
  for (auto _ : state) r = sparq::search_permutation(w, s);
  state.counters["identity_l1_frac"] = r.identity_l1 / r.total_l1;
  state.counters["permuted_l1_frac"] = r.permuted_l1 / r.total_l1;
  state.counters["sweeps"] = r.sweeps;
  state.counters["swaps"] = static_cast<double>(r.swaps);
  state.counters["converged"] = r.converged;
  finish(state, s);
}
BENCHMARK(BM_PermutationSearch)
    ->Args({256, 0})
    ->Args({1024, 0})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
