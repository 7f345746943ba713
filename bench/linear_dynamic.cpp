// The overhead of dynamic per-token quantization (issue 15): linear_dynamic
// (FP32 rows in: per-row range, quantize to u8, pack, GEMM, dequantize with
// row scale x channel scale) against the same GEMM on activations already
// quantized (gemm() with a DequantizeStage of per-row scales), at the BERT
// shapes. Overhead share = (dynamic - prequantized) / dynamic; unfused/...
// times the three separate passes linear_dynamic made before the fusion
// (range, quantize into a u8 copy, pack), in the same run.
//
//   bench_linear_dynamic --benchmark_repetitions=7
//     --benchmark_enable_random_interleaving=true
//     --benchmark_report_aggregates_only=true
//
// Benchmarks: dynamic/<rows>/<k>x<n>/t1 and prequantized/... (same weights,
// same rows), one thread, timed in CPU time (steadier than wall clock on a
// shared machine). The prequantized peer uses one zero point for every
// row (gemm()'s Activations hold one); the work it does per element is the
// same as with per-row zero points.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "quant/dynamic_qparams.hpp"
#include "sparq/gemm/gemm.hpp"
#include "sparq/quant/quantize.hpp"

namespace {

struct Shape {
  int64_t m, k, n;
};

struct Problem {
  std::vector<float> x;
  std::vector<uint8_t> q;
  sparq::PackedWeights w;
  std::vector<float> y;

  explicit Problem(const Shape& s)
      : x(static_cast<std::size_t>(s.m * s.k)),
        q(x.size()),
        y(static_cast<std::size_t>(s.m * s.n)) {
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float& v : x) v = normal(rng);
    for (std::size_t i = 0; i < q.size(); ++i) q[i] = static_cast<uint8_t>(rng());
    std::vector<int8_t> wq(static_cast<std::size_t>(s.k * s.n));
    for (int8_t& v : wq) v = static_cast<int8_t>(rng());
    const std::vector<float> scales(static_cast<std::size_t>(s.n), 0.01f);
    w = sparq::pack_weights(wq.data(), s.n, s.k, sparq::WeightLayout::out_in, 0, scales);
  }
};

void set_counters(benchmark::State& state, const Shape& s) {
  state.counters["GOPS"] = benchmark::Counter(static_cast<double>(2 * s.m * s.n * s.k),
                                              benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
}

void bm_dynamic(benchmark::State& state, Shape s, int threads) {
  Problem p(s);
  for (auto _ : state) {
    sparq::linear_dynamic(p.x.data(), s.m, 0, p.w, {}, p.y.data(), 0,
                          sparq::DynamicOptions{true, false, threads});
    benchmark::DoNotOptimize(p.y.data());
  }
  set_counters(state, s);
}

// The unfused definition (linear_dynamic before issue 15's fusion): a range
// pass per row, a quantize pass into a u8 copy of x, then the GEMM packs
// that copy, all but the GEMM on the calling thread. gemm() takes one zero
// point, so the rows' own zero points are not passed on: the work per
// element is the same.
void bm_unfused(benchmark::State& state, Shape s, int threads) {
  Problem p(s);
  sparq::DequantizeStage stage;
  stage.activation_scales.resize(static_cast<std::size_t>(s.m));
  std::vector<int32_t> zps(static_cast<std::size_t>(s.m));
  const sparq::ActivationsU8 a{p.q.data(), s.m, s.k, 0, 128};
  for (auto _ : state) {
    for (int64_t i = 0; i < s.m; ++i) {
      const auto r = static_cast<std::size_t>(i);
      const sparq::QParams qp =
          sparq::detail::dynamic_u8_qparams(p.x.data() + i * s.k, 1, s.k, s.k, "bench");
      stage.activation_scales[r] = qp.scale;
      zps[r] = qp.zero_point;
    }
    for (int64_t i = 0; i < s.m; ++i) {
      const auto r = static_cast<std::size_t>(i);
      sparq::detail::quantize_tensor(sparq::DType::u8, p.x.data() + i * s.k, p.q.data() + i * s.k,
                                     static_cast<std::size_t>(s.k),
                                     1.0f / stage.activation_scales[r], zps[r], 0, 255);
    }
    sparq::gemm(a, p.w, stage, p.y.data(), 0, sparq::GemmOptions{threads});
    benchmark::DoNotOptimize(p.y.data());
  }
  set_counters(state, s);
}

void bm_prequantized(benchmark::State& state, Shape s, int threads) {
  Problem p(s);
  sparq::DequantizeStage stage;
  stage.activation_scales.assign(static_cast<std::size_t>(s.m), 0.02f);
  const sparq::ActivationsU8 a{p.q.data(), s.m, s.k, 0, 128};
  for (auto _ : state) {
    sparq::gemm(a, p.w, stage, p.y.data(), 0, sparq::GemmOptions{threads});
    benchmark::DoNotOptimize(p.y.data());
  }
  set_counters(state, s);
}

const bool registered = [] {
  for (int64_t m : {128, 1024}) {
    // n = 16: the GEMM is small, so dynamic - prequantized isolates the
    // quantization work (it does not depend on n) above the noise of a
    // shared machine; divide it by the dynamic time of the full shape.
    for (const auto& [k, n] :
         {std::pair<int64_t, int64_t>{768, 768}, {768, 3072}, {3072, 768}, {768, 16}, {3072, 16}}) {
      for (int threads : {1}) {
        const Shape s{m, k, n};
        const std::string tail = std::to_string(m) + "/" + std::to_string(k) + "x" +
                                 std::to_string(n) + "/t" + std::to_string(threads);
        benchmark::RegisterBenchmark(("dynamic/" + tail).c_str(), bm_dynamic, s, threads)
            ->Unit(benchmark::kMicrosecond);
        benchmark::RegisterBenchmark(("unfused/" + tail).c_str(), bm_unfused, s, threads)
            ->Unit(benchmark::kMicrosecond);
        benchmark::RegisterBenchmark(("prequantized/" + tail).c_str(), bm_prequantized, s, threads)
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
