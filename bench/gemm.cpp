// INT8 GEMM per ISA and shape (Google Benchmark), with oneDNN on the same
// shape in the same binary when it is installed, and Eigen's FP32 GEMM.
//
//   bench_gemm [--benchmark_filter=avx512vnni] [--benchmark_repetitions=5
//               --benchmark_report_aggregates_only=true]
//
// Benchmarks: gemm/<isa>/<act>/M/N/K (sparq, pre-packed weights, int32 out,
// act = u8 or s8 activations), dynamic/<isa>/M/N/K (linear_dynamic, fp32 in
// and out), onednn/<act>/M/N/K (oneDNN matmul -> s32 with weights reordered
// once to format_tag::any), fp32/M/N/K (Eigen float GEMM built for AVX2 + FMA
// on x86, tools/commands/fp32_peer.hpp; not registered on a CPU without
// them). Counter GOPS = 2*M*N*K per second, one thread, wall clock.
// Shapes: M in {1, 4, 16, 64, 256} x N = K = 4096, and 1024^3.
// `sparq bench gemm` prints the same comparison with the peak and bandwidth
// bounds; this program is for per-kernel profiling.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../tools/commands/bench_gemm.hpp"
#include "sparq/gemm/gemm.hpp"
#include "sparq/isa.hpp"

namespace {

using sparq::tool::gemm_bench::gops;

struct Shape {
  int64_t m, n, k;
};
constexpr Shape kShapes[] = {{1, 4096, 4096},  {4, 4096, 4096},   {16, 4096, 4096},
                             {64, 4096, 4096}, {256, 4096, 4096}, {1024, 1024, 1024}};

template <class T>
std::vector<T> random_vector(std::size_t n) {
  std::mt19937 rng(static_cast<unsigned>(n));
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(rng());
  return v;
}

void set_gops(benchmark::State& state, const Shape& s) {
  state.counters["GOPS"] = benchmark::Counter(
      2.0 * static_cast<double>(s.m * s.n * s.k) * static_cast<double>(state.iterations()) / 1e9,
      benchmark::Counter::kIsRate);
}

template <class T>
void bm_gemm(benchmark::State& state, sparq::Isa isa, Shape s) {
  sparq::ScopedIsa scoped(isa);
  const auto w = random_vector<int8_t>(static_cast<std::size_t>(s.n * s.k));
  const sparq::PackedWeights p =
      sparq::pack_weights(w.data(), s.n, s.k, sparq::WeightLayout::out_in);
  const auto a = random_vector<T>(static_cast<std::size_t>(s.m * s.k));
  std::vector<int32_t> c(static_cast<std::size_t>(s.m * s.n));
  for (auto _ : state) {
    sparq::gemm(sparq::Activations<T>{a.data(), s.m, s.k, 0, 1}, p, sparq::Int32Output{}, c.data(),
                0, sparq::GemmOptions{1});
    benchmark::DoNotOptimize(c.data());
  }
  set_gops(state, s);
}

void bm_dynamic(benchmark::State& state, sparq::Isa isa, Shape s) {
  sparq::ScopedIsa scoped(isa);
  const auto w = random_vector<int8_t>(static_cast<std::size_t>(s.n * s.k));
  const sparq::PackedWeights p =
      sparq::pack_weights(w.data(), s.n, s.k, sparq::WeightLayout::out_in);
  std::vector<float> x(static_cast<std::size_t>(s.m * s.k));
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto& v : x) v = normal(rng);
  std::vector<float> y(static_cast<std::size_t>(s.m * s.n));
  for (auto _ : state) {
    sparq::linear_dynamic(x.data(), s.m, 0, p, {}, y.data(), 0,
                          sparq::DynamicOptions{false, false, 1});
    benchmark::DoNotOptimize(y.data());
  }
  set_gops(state, s);
}

#if defined(SPARQ_HAVE_ONEDNN)
void bm_onednn(benchmark::State& state, bool s8, Shape s) {
  sparq::tool::gemm_bench::OneDnnGemm dnn(s.m, s.n, s.k, s8, 1);
  for (auto _ : state) dnn.run();
  set_gops(state, s);
  state.SetLabel(dnn.impl());
}
#endif

void bm_fp32(benchmark::State& state, Shape s) {
  sparq::tool::gemm_bench::Fp32Gemm fp32(s.m, s.n, s.k, 1);
  for (auto _ : state) fp32.run();
  set_gops(state, s);
}

std::string shape_name(const Shape& s) {
  return std::to_string(s.m) + "/" + std::to_string(s.n) + "/" + std::to_string(s.k);
}

const bool registered = [] {
  for (const Shape& s : kShapes) {
    for (sparq::Isa isa : sparq::supported_isas()) {
      // The scalar kernel takes seconds per large shape: only the smallest.
      if (isa == sparq::Isa::scalar && s.m * s.n * s.k > 4096LL * 4096) continue;
      const std::string isa_s(sparq::isa_name(isa));
      benchmark::RegisterBenchmark(("gemm/" + isa_s + "/u8/" + shape_name(s)).c_str(),
                                   bm_gemm<uint8_t>, isa, s)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("gemm/" + isa_s + "/s8/" + shape_name(s)).c_str(),
                                   bm_gemm<int8_t>, isa, s)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("dynamic/" + isa_s + "/" + shape_name(s)).c_str(), bm_dynamic,
                                   isa, s)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
    if (!sparq::tool::gemm_bench::Fp32Gemm::unavailable()) {
      benchmark::RegisterBenchmark(("fp32/" + shape_name(s)).c_str(), bm_fp32, s)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
#if defined(SPARQ_HAVE_ONEDNN)
    benchmark::RegisterBenchmark(("onednn/u8/" + shape_name(s)).c_str(), bm_onednn, false, s)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("onednn/s8/" + shape_name(s)).c_str(), bm_onednn, true, s)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
#endif
  }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
