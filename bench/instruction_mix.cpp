// Throughput of the instruction mixes the 2:4 sparse kernels are built from,
// on the CPU that runs this program (docs/sparse-gemm.md explains the sparse
// GEMM ratios from these numbers). Each benchmark runs 12 independent
// chains per iteration, so latency does not limit it. Read the times as
// ratios to `dpbusd_zmm` of the same run (one vpdpbusd zmm per cycle on
// Zen 4 and Ice Lake), since the TSC does not count core cycles.
//
//   dpbusd_zmm            12 vpdpbusd zmm: the dense kernel's only vector op
//   permb_zmm / shufb_zmm 12 vpermb / vpshufb zmm: the direct kernels' gather
//   multishift_zmm        12 vpmultishiftqb zmm: index decoding
//   dpbusd+permb          12 pairs, vpermb feeding vpdpbusd: one direct-kernel
//                         row step (the work of 2 dense vpdpbusd)
//   dpbusd+shufb          the same with vpshufb (the non-VBMI kernel)
//
// Run: ./build/bench/bench_instruction_mix --benchmark_repetitions=5
//      --benchmark_report_aggregates_only=true
// x86 with AVX-512 VNNI + VBMI only; elsewhere the program says so and exits.
#include <benchmark/benchmark.h>

#include <cstdio>

#if defined(__x86_64__) || defined(__i386__)
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
// GCC bug 105593: the VBMI intrinsics built on _mm512_undefined_epi32() warn
// once inlined into a target-attribute function (as in cmake/SparqIsa.cmake).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#define SPARQ_MIX_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni,avx512vbmi")))

namespace {

bool cpu_supported() {
  return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vbmi") &&
         __builtin_cpu_supports("avx512bw");
}

// Twelve accumulators; `op` updates one of them. The empty asm keeps the
// compiler from hoisting loop-invariant work out of the loop.
template <class Op>
SPARQ_MIX_TARGET void run_chains(benchmark::State& state, Op op) {
  __m512i acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_epi32(i + 1);
  __m512i x = _mm512_set1_epi32(0x01020304);
  const __m512i y = _mm512_set1_epi32(0x05060708);
  for (auto _ : state) {
    for (int i = 0; i < 12; ++i) acc[i] = op(acc[i], x, y);
    __asm__ volatile("" : "+v"(x));
  }
  for (int i = 0; i < 12; ++i) benchmark::DoNotOptimize(acc[i]);
  state.SetItemsProcessed(state.iterations() * 12);
}

SPARQ_MIX_TARGET __m512i op_dpbusd(__m512i a, __m512i x, __m512i y) {
  return _mm512_dpbusd_epi32(a, x, y);
}
SPARQ_MIX_TARGET __m512i op_permb(__m512i a, __m512i x, __m512i) {
  return _mm512_permutexvar_epi8(x, a);
}
SPARQ_MIX_TARGET __m512i op_shufb(__m512i a, __m512i x, __m512i) {
  return _mm512_shuffle_epi8(a, x);
}
SPARQ_MIX_TARGET __m512i op_multishift(__m512i a, __m512i x, __m512i) {
  return _mm512_multishift_epi64_epi8(x, a);
}
// The gathered activations depend on the accumulator so the two ops of a
// pair cannot be merged or hoisted; the dependency chain (permb + dpbusd
// latency) is shorter than 12 pairs' throughput time.
SPARQ_MIX_TARGET __m512i op_dpbusd_permb(__m512i a, __m512i x, __m512i y) {
  return _mm512_dpbusd_epi32(a, _mm512_permutexvar_epi8(a, x), y);
}
SPARQ_MIX_TARGET __m512i op_dpbusd_shufb(__m512i a, __m512i x, __m512i y) {
  return _mm512_dpbusd_epi32(a, _mm512_shuffle_epi8(x, a), y);
}

template <__m512i (*Op)(__m512i, __m512i, __m512i)>
void BM_mix(benchmark::State& state) {
  if (!cpu_supported()) {
    state.SkipWithError("needs AVX-512 VNNI + VBMI");
    return;
  }
  run_chains(state, Op);
}

}  // namespace

BENCHMARK_TEMPLATE(BM_mix, op_dpbusd)->Name("dpbusd_zmm");
BENCHMARK_TEMPLATE(BM_mix, op_permb)->Name("permb_zmm");
BENCHMARK_TEMPLATE(BM_mix, op_shufb)->Name("shufb_zmm");
BENCHMARK_TEMPLATE(BM_mix, op_multishift)->Name("multishift_zmm");
BENCHMARK_TEMPLATE(BM_mix, op_dpbusd_permb)->Name("dpbusd+permb");
BENCHMARK_TEMPLATE(BM_mix, op_dpbusd_shufb)->Name("dpbusd+shufb");

BENCHMARK_MAIN();

#else

int main() {
  std::puts("bench_instruction_mix: x86 AVX-512 instruction mixes; nothing to measure here");
  return 0;
}

#endif
