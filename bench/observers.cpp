// observe() throughput of the calibration observers in GB/s of fp32 input
// (one thread, 16 MiB batches), per ISA, plus the cost of choosing a range
// from a 2048-bin histogram. Targets (issue 3): MinMax >= 20 GB/s,
// PerChannelMinMax (axis 0, 64 channels) >= 10 GB/s, Histogram >= 4 GB/s.
//
//   bench_observers --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Each benchmark's argument is the ISA (0 scalar, 1 avx2, 3 avx512vnni, ...,
// the sparq::Isa value); ISAs the host cannot run are skipped.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "sparq/isa.hpp"
#include "sparq/observe/observers.hpp"

namespace {

constexpr std::size_t kBatchBytes = std::size_t{16} << 20;
constexpr std::size_t kBatch = kBatchBytes / sizeof(float);

const std::vector<float>& batch() {
  static const std::vector<float> data = [] {
    std::mt19937_64 rng(1);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> v(kBatch);
    for (auto& x : v) x = dist(rng);
    return v;
  }();
  return data;
}

// Runs `observer` on the 16 MiB batch under the ISA of the argument.
template <class Make>
void run(benchmark::State& state, Make make, std::vector<int64_t> shape) {
  const auto isa = static_cast<sparq::Isa>(state.range(0));
  if (!sparq::isa_supported(isa)) {
    state.SkipWithError("ISA not supported on this host");
    return;
  }
  sparq::ScopedIsa guard(isa);
  state.SetLabel(std::string(sparq::isa_name(isa)));
  auto observer = make();
  const auto& x = batch();
  observer->observe(x, shape);  // warm-up: page faults, grid set-up
  for (auto _ : state) {
    observer->observe(x, shape);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBatchBytes));
}

void BM_MinMax(benchmark::State& state) {
  run(state, [] { return std::make_unique<sparq::MinMaxObserver>(); },
      {static_cast<int64_t>(kBatch)});
}

void BM_MovingAverageMinMax(benchmark::State& state) {
  run(state, [] { return std::make_unique<sparq::MovingAverageMinMaxObserver>(); },
      {static_cast<int64_t>(kBatch)});
}

void BM_PerChannelMinMax_Axis0x64(benchmark::State& state) {
  run(state, [] { return std::make_unique<sparq::PerChannelMinMaxObserver>(sparq::QuantSpec{}); },
      {64, static_cast<int64_t>(kBatch / 64)});
}

void BM_PerChannelMinMax_LastAxis64(benchmark::State& state) {
  sparq::QuantSpec spec;
  spec.axis = -1;
  run(state, [spec] { return std::make_unique<sparq::PerChannelMinMaxObserver>(spec); },
      {static_cast<int64_t>(kBatch / 64), 64});
}

void BM_Histogram(benchmark::State& state) {
  run(state, [] { return std::make_unique<sparq::HistogramObserver>(); },
      {static_cast<int64_t>(kBatch)});
}

// Choosing the range from the histogram of 16 MiB of N(0, 1) data.
void BM_HistogramRange(benchmark::State& state) {
  const auto method = static_cast<sparq::RangeMethod>(state.range(0));
  state.SetLabel(std::string(sparq::range_method_name(method)));
  sparq::HistogramObserver observer;
  observer.observe(batch());
  for (auto _ : state) benchmark::DoNotOptimize(observer.range(method));
}

void isa_args(benchmark::internal::Benchmark* b) {
  for (sparq::Isa isa : sparq::supported_isas()) b->Arg(static_cast<int>(isa));
}

BENCHMARK(BM_MinMax)->Apply(isa_args)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MovingAverageMinMax)->Apply(isa_args)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PerChannelMinMax_Axis0x64)->Apply(isa_args)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PerChannelMinMax_LastAxis64)->Apply(isa_args)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Histogram)->Apply(isa_args)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_HistogramRange)->DenseRange(0, 3)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
