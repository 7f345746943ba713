// Quantize / dequantize throughput against memcpy, per ISA, one thread.
//
// Sizes are the fp32 side of the tensor: 4 MiB (1 Mi floats, about L2/L3
// resident) and 64 MiB (16 Mi floats, DRAM). Counters:
//   GB/s             bytes moved per second = fp32 bytes read + int8 bytes
//                    written for quantize (5 bytes per element), int8 read +
//                    fp32 written for dequantize (also 5), source + destination
//                    for memcpy (8 bytes per float of the same fp32 buffer).
//   ratio_to_memcpy  this GB/s divided by the GB/s of memcpy of the same
//                    fp32 bytes, measured in this process right after each
//                    run with the same iteration count (so both see the same
//                    load); the memcpy/<size> rows show memcpy alone.
// Time is the benchmark thread's CPU time (CLOCK_THREAD_CPUTIME_ID) for both
// the kernels and the memcpy yardstick: on a shared, loaded machine wall time
// mostly measures waiting for a core, while thread CPU time still counts the
// memory stalls of a single-threaded loop; on an idle machine the two agree.
// Run with
//   bench_quantize --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <type_traits>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sparq/isa.hpp"
#include "sparq/quant/quantize.hpp"

namespace {

// Thread CPU time in seconds.
double thread_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}
constexpr std::size_t kSizes[] = {std::size_t{4} << 20, std::size_t{64} << 20};  // fp32 bytes

std::vector<float> input(std::size_t n) {
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double seconds_since(double t0) { return thread_seconds() - t0; }

// Source and destination of the memcpy yardstick, one pair per size.
std::map<std::size_t, std::pair<std::vector<char>, std::vector<char>>> g_copy_buffers;

// memcpy bandwidth (bytes read + written per thread-CPU second) of `bytes`
// bytes, over `iterations` copies.
double memcpy_rate(std::size_t bytes, std::int64_t iterations) {
  auto& [a, b] = g_copy_buffers[bytes];
  if (a.size() != bytes) {
    a.assign(bytes, 1);
    b.assign(bytes, 0);
  }
  const double t0 = thread_seconds();
  for (std::int64_t i = 0; i < iterations; ++i) {
    std::memcpy(b.data(), a.data(), bytes);
    benchmark::ClobberMemory();
  }
  return 2.0 * static_cast<double>(bytes) * static_cast<double>(iterations) / seconds_since(t0);
}

// Runs body() in the benchmark loop and reports GB/s and ratio_to_memcpy.
// The memcpy of the same fp32 bytes runs right after, as many times, so
// that both see the same machine load (the machine may be shared).
template <class Body>
void run(benchmark::State& state, std::size_t fp32_bytes, double bytes_per_iter, Body&& body) {
  const double t0 = thread_seconds();
  for (auto _ : state) {
    body();
    benchmark::ClobberMemory();
  }
  const double rate = bytes_per_iter * static_cast<double>(state.iterations()) / seconds_since(t0);
  state.counters["GB/s"] = rate * 1e-9;
  state.counters["ratio_to_memcpy"] = rate / memcpy_rate(fp32_bytes, state.iterations());
}

void bm_memcpy(benchmark::State& state, std::size_t bytes) {
  std::vector<char> a(bytes, 1), b(bytes, 0);
  run(state, bytes, 2.0 * static_cast<double>(bytes),
      [&] { std::memcpy(b.data(), a.data(), bytes); });
}

template <class T>
void bm_quantize(benchmark::State& state, sparq::Isa isa, std::size_t bytes) {
  const sparq::ScopedIsa guard(isa);
  const std::size_t n = bytes / sizeof(float);
  const auto x = input(n);
  std::vector<T> q(n);
  const sparq::Quantizer<T, sparq::Scheme::asymmetric> quantizer(
      sparq::QParams{0.02f, std::is_signed_v<T> ? 0 : 128});
  run(state, bytes, 5.0 * static_cast<double>(n), [&] { quantizer.quantize(x, q); });
}

template <class T>
void bm_dequantize(benchmark::State& state, sparq::Isa isa, std::size_t bytes) {
  const sparq::ScopedIsa guard(isa);
  const std::size_t n = bytes / sizeof(float);
  std::vector<T> q(n);
  for (std::size_t i = 0; i < n; ++i) q[i] = static_cast<T>(i * 31);
  std::vector<float> y(n);
  const sparq::Quantizer<T, sparq::Scheme::asymmetric> quantizer(sparq::QParams{0.02f, 3});
  run(state, bytes, 5.0 * static_cast<double>(n), [&] { quantizer.dequantize(q, y); });
}

// Per channel, channel on the last axis of a [n/64, 64] tensor (inner == 1).
void bm_quantize_channel(benchmark::State& state, sparq::Isa isa, std::size_t bytes) {
  const sparq::ScopedIsa guard(isa);
  const std::size_t n = bytes / sizeof(float);
  const auto x = input(n);
  std::vector<int8_t> q(n);
  sparq::ChannelQParams qp{std::vector<float>(64, 0.02f), std::vector<int32_t>(64, 0), 1};
  for (int c = 0; c < 64; ++c) qp.scales[c] = 0.01f + 0.001f * static_cast<float>(c);
  const sparq::Quantizer<int8_t, sparq::Scheme::symmetric, sparq::Granularity::per_channel>
      quantizer(qp);
  const std::vector<int64_t> shape = {static_cast<int64_t>(n / 64), 64};
  run(state, bytes, 5.0 * static_cast<double>(n), [&] { quantizer.quantize(x, shape, q); });
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  // Names are built with append(): GCC 12 warns (-Wrestrict, a false
  // positive, GCC bug 105329) on `"literal" + std::string` at -O2.
  auto name = [](const char* op, std::string_view isa, std::size_t bytes) {
    std::string s(op);
    if (!isa.empty()) s.append("/").append(isa);
    return s.append("/").append(std::to_string(bytes >> 20)).append("MiB");
  };
  for (std::size_t bytes : kSizes) {
    benchmark::RegisterBenchmark(name("memcpy", "", bytes).c_str(), bm_memcpy, bytes);
    for (sparq::Isa isa : sparq::supported_isas()) {
      const auto isa_name = sparq::isa_name(isa);
      benchmark::RegisterBenchmark(name("quantize_s8", isa_name, bytes).c_str(),
                                   bm_quantize<int8_t>, isa, bytes);
      benchmark::RegisterBenchmark(name("quantize_u8", isa_name, bytes).c_str(),
                                   bm_quantize<uint8_t>, isa, bytes);
      benchmark::RegisterBenchmark(name("dequantize_s8", isa_name, bytes).c_str(),
                                   bm_dequantize<int8_t>, isa, bytes);
      benchmark::RegisterBenchmark(name("quantize_channel_s8", isa_name, bytes).c_str(),
                                   bm_quantize_channel, isa, bytes);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
