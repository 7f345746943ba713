// Shared pieces of `sparq bench gemm` (tools/commands/bench.cpp) and
// bench/gemm.cpp: the compute-peak and read-bandwidth probes, the oneDNN
// peer, the per-shape record and its JSON line. The FP32 (Eigen) peer is in
// fp32_peer.hpp: it needs its own translation unit and compile flags.
//
// Header-only on purpose: both programs include it (bench/gemm.cpp as
// "../tools/commands/bench_gemm.hpp"); neither is part of the library.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <time.h>

#include "fp32_peer.hpp"
#include "sparq/detail/packed_weights_data.hpp"
#include "sparq/gemm/sgemm.hpp"
#include "sparq/isa.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

#if defined(SPARQ_HAVE_ONEDNN)
#include <dnnl.hpp>
#endif

namespace sparq::tool::gemm_bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// When true, median_seconds uses the process CPU clock instead of the wall
/// clock: on a machine shared with other jobs it counts only the time this
/// process ran (meaningful for one thread; with several threads it sums them).
inline bool& use_cpu_clock() {
  static bool on = false;
  return on;
}

inline double now_seconds() {
  if (use_cpu_clock()) {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  }
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

/// Median over `repeat` timings of fn, each timing running fn often enough to
/// last about `min_seconds`; returns seconds per call.
inline double median_seconds(const std::function<void()>& fn, int repeat,
                             double min_seconds = 0.02) {
  fn();  // warm-up: caches, page faults, thread pools
  std::vector<double> times;
  for (int r = 0; r < repeat; ++r) {
    int iters = 0;
    const double t0 = now_seconds();
    do {
      fn();
      ++iters;
    } while (now_seconds() - t0 < min_seconds);
    times.push_back((now_seconds() - t0) / iters);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

/// Like median_seconds for several contenders at once, interleaved: each
/// repetition times every contender in turn, so a burst of load from other
/// jobs on a shared machine hits all of them alike and their ratios stay fair.
inline std::vector<double> median_seconds_interleaved(const std::vector<std::function<void()>>& fns,
                                                      int repeat, double min_seconds = 0.02) {
  std::vector<std::vector<double>> times(fns.size());
  for (const auto& fn : fns) fn();  // warm-up
  for (int r = 0; r < repeat; ++r) {
    for (std::size_t f = 0; f < fns.size(); ++f) {
      int iters = 0;
      const double t0 = now_seconds();
      do {
        fns[f]();
        ++iters;
      } while (now_seconds() - t0 < min_seconds);
      times[f].push_back((now_seconds() - t0) / iters);
    }
  }
  std::vector<double> medians;
  for (auto& t : times) {
    std::sort(t.begin(), t.end());
    medians.push_back(t[t.size() / 2]);
  }
  return medians;
}

// Twelve independent chains of `op` (with any prefix) into accumulators 4..15
// of register class `r` ("zmm", "ymm"), sources 0 and 1 zeroed by `zero`,
// `n` iterations: the peak probes below, which never touch memory.
// clang-format off
#define SPARQ_PEAK_STEP(op, r, acc) op " %%" r "0,%%" r "1,%%" r #acc "\n\t"
#define SPARQ_PEAK12(zero, op, r, n)                                                  \
  __asm__ volatile(                                                                   \
      zero " %%" r "0,%%" r "0,%%" r "0\n\t" zero " %%" r "1,%%" r "1,%%" r "1\n\t" \
      "1:\n\t"                                                                        \
      SPARQ_PEAK_STEP(op, r, 4) SPARQ_PEAK_STEP(op, r, 5) SPARQ_PEAK_STEP(op, r, 6)    \
      SPARQ_PEAK_STEP(op, r, 7) SPARQ_PEAK_STEP(op, r, 8) SPARQ_PEAK_STEP(op, r, 9)    \
      SPARQ_PEAK_STEP(op, r, 10) SPARQ_PEAK_STEP(op, r, 11) SPARQ_PEAK_STEP(op, r, 12) \
      SPARQ_PEAK_STEP(op, r, 13) SPARQ_PEAK_STEP(op, r, 14) SPARQ_PEAK_STEP(op, r, 15) \
      "dec %0\n\tjnz 1b\n\tvzeroupper"                                                \
      : "+r"(n)                                                                       \
      :                                                                               \
      : "xmm0", "xmm1", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",      \
        "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc")
// clang-format on

/// Best of 5 timed runs of `run(iters)` (which returns its operations per
/// iteration), in G operations per second: a probe measures what the core
/// can do.
template <class Run>
double best_rate_gops(Run run) {
  const long iters = 2000000;
  std::vector<double> rates;
  for (int r = 0; r < 5; ++r) {
    const double t0 = now_seconds();
    const double ops = run(iters);
    rates.push_back(ops * static_cast<double>(iters) / (now_seconds() - t0) / 1e9);
  }
  return *std::max_element(rates.begin(), rates.end());
}

/// Integer multiply-add peak of one core for `isa`, in GOPS (2 ops per
/// multiply-add), from a loop of 12 independent accumulations that never
/// touches memory. avx512vnni: vpdpbusd zmm (64 MACs); avxvnni: {vex}
/// vpdpbusd ymm (32 MACs); avx2: vpmaddwd ymm (16 MACs, what the AVX2 kernel
/// does per widened pair). Returns nullopt for ISAs without a probe.
inline std::optional<double> int8_peak_gops(Isa isa) {
#if defined(__x86_64__)
  auto run = [&](long iters) {
    long n = iters;
    switch (isa) {
      case Isa::avx512vnni:
        SPARQ_PEAK12("vpxord", "vpdpbusd", "zmm", n);
        return 12.0 * 64 * 2;
      case Isa::avxvnni:
        SPARQ_PEAK12("vpxor", "%{vex%} vpdpbusd", "ymm", n);
        return 12.0 * 32 * 2;
      case Isa::avx2:
        __asm__ volatile(
            "vpxor %%ymm0,%%ymm0,%%ymm0\n\tvpxor %%ymm1,%%ymm1,%%ymm1\n\t"
            "1:\n\t"
            "vpmaddwd %%ymm0,%%ymm1,%%ymm4\n\tvpmaddwd %%ymm0,%%ymm1,%%ymm5\n\t"
            "vpmaddwd %%ymm0,%%ymm1,%%ymm6\n\tvpmaddwd %%ymm0,%%ymm1,%%ymm7\n\t"
            "vpmaddwd %%ymm0,%%ymm1,%%ymm8\n\tvpmaddwd %%ymm0,%%ymm1,%%ymm9\n\t"
            "vpaddd %%ymm4,%%ymm10,%%ymm10\n\tvpaddd %%ymm5,%%ymm11,%%ymm11\n\t"
            "vpaddd %%ymm6,%%ymm12,%%ymm12\n\tvpaddd %%ymm7,%%ymm13,%%ymm13\n\t"
            "vpaddd %%ymm8,%%ymm14,%%ymm14\n\tvpaddd %%ymm9,%%ymm15,%%ymm15\n\t"
            "dec %0\n\tjnz 1b\n\tvzeroupper"
            : "+r"(n)
            :
            : "xmm0", "xmm1", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
              "xmm12", "xmm13", "xmm14", "xmm15", "cc");
        return 6.0 * 16 * 2;
      default:
        return 0.0;
    }
  };
  if (isa != Isa::avx512vnni && isa != Isa::avxvnni && isa != Isa::avx2) return std::nullopt;
  if (!isa_supported(isa)) return std::nullopt;
  return best_rate_gops(run);
#else
  (void)isa;
  return std::nullopt;
#endif
}

/// FP32 multiply-add peak of one core in GFLOPS (2 flops per lane of a
/// vfmadd231ps), from 12 independent accumulation chains that never touch
/// memory: the same probe as int8_peak_gops. width 512: zmm (AVX-512F),
/// 256: ymm (AVX2 + FMA). Zen 4 runs a zmm FMA as two 256-bit halves, so both
/// widths can give the same peak there; an Intel core with two 512-bit FMA
/// units doubles it with zmm. nullopt when the CPU lacks the instructions.
inline std::optional<double> fp32_peak_gops(int width) {
#if defined(__x86_64__)
  const auto& features = cpu_info().features;
  auto has = [&](const char* name) {
    return std::find(features.begin(), features.end(), name) != features.end();
  };
  if (width == 512 ? !has("avx512f") : !(has("avx2") && has("fma"))) return std::nullopt;
  auto run = [&](long iters) {
    long n = iters;
    if (width == 512) {
      SPARQ_PEAK12("vpxord", "vfmadd231ps", "zmm", n);
      return 12.0 * 16 * 2;
    }
    SPARQ_PEAK12("vxorps", "vfmadd231ps", "ymm", n);
    return 12.0 * 8 * 2;
  };
  return best_rate_gops(run);
#else
  (void)width;
  return std::nullopt;
#endif
}

/// The FP32 probe matching the kernel sparq::sgemm runs for `isa`: zmm for
/// the AVX-512 kernel, ymm for the AVX2 one, none for scalar and ARM.
inline std::optional<double> sgemm_peak_gops(Isa isa) {
  const std::string_view name = sgemm_kernel_name(isa);
  if (name.ends_with("__avx512f")) return fp32_peak_gops(512);
  if (name.ends_with("__avx2fma")) return fp32_peak_gops(256);
  return std::nullopt;
}

/// Read bandwidth (bytes/s) for a buffer of `bytes` read front to back
/// repeatedly by `threads` threads (each its own share), median of 5. The
/// buffer is allocated like packed weights (AlignedBytes: huge pages for
/// large sizes), so the probe sees the same TLB behaviour as the GEMM.
inline double read_bandwidth(std::size_t bytes, int threads) {
  const std::size_t words = std::max<std::size_t>(bytes / 8, 1024);
  sparq::detail::AlignedBytes storage(words * 8);
  auto* buf = reinterpret_cast<uint64_t*>(storage.data());
  for (std::size_t i = 0; i < words; ++i) buf[i] = i * 0x9E3779B97F4A7C15ull;
  volatile uint64_t sink = 0;
  auto pass = [&] {
    uint64_t total = 0;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) reduction(^ : total) schedule(static)
#endif
    for (int64_t t = 0; t < threads; ++t) {
      const std::size_t b = words * static_cast<std::size_t>(t) / threads;
      const std::size_t e = words * static_cast<std::size_t>(t + 1) / threads;
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      std::size_t i = b;
      for (; i + 4 <= e; i += 4) {
        s0 ^= buf[i];
        s1 ^= buf[i + 1];
        s2 ^= buf[i + 2];
        s3 ^= buf[i + 3];
      }
      total ^= s0 ^ s1 ^ s2 ^ s3;
    }
    sink = sink ^ total;
  };
  (void)threads;
  const double secs = median_seconds(pass, 5, 0.05);
  return static_cast<double>(words * 8) / secs;
}

/// The per-shape result line of `sparq bench gemm` (and later `--sparse`).
/// Optional fields print as JSON null when not measured.
struct ShapeRecord {
  int64_t m = 0, n = 0, k = 0;
  int threads = 1;
  std::string isa;
  std::string kernel;
  std::optional<double> gops;  ///< sparq, u8 activations, int32 output
  /// sparq on one thread, same shape, timed in the same run (threads > 1 only)
  std::optional<double> gops_1thread;
  std::optional<double> s8_gops;       ///< sparq, s8 activations
  std::optional<double> dynamic_gops;  ///< sparq linear_dynamic (fp32 in/out)
  std::optional<double> peak_gops;     ///< probe x threads
  std::optional<double> bound_gops;    ///< min(peak, bandwidth * ops / bytes)
  std::optional<double> bandwidth_gbs;
  std::optional<double> onednn_gops;       ///< oneDNN matmul u8 x s8 -> s32, pre-packed
  std::optional<double> onednn_s8_gops;    ///< oneDNN with s8 activations
  std::optional<double> fp32_gops;         ///< Eigen float GEMM (fp32_peer.hpp)
  std::optional<double> sparq_fp32_gops;   ///< sparq's own FP32 GEMM (sgemm.hpp)
  std::optional<double> fp32_peak_gops;    ///< FP32 FMA probe of sgemm's ISA x threads
  std::optional<double> sparse_gops;       ///< --sparse: 2:4 sparse GEMM on the same shape
  std::optional<std::string> sparse_path;  ///< --sparse: "direct" or "expand"
  double pack_ms = 0;                      ///< pack_weights time for this N x K
};

inline std::string json_number(const std::optional<double>& v) {
  return v ? fmt::format("{:.2f}", *v) : std::string("null");
}

/// gops / gops_1thread, when both were measured.
inline std::optional<double> speedup_vs_1thread(const ShapeRecord& r) {
  if (!r.gops || !r.gops_1thread || *r.gops_1thread == 0.0) return std::nullopt;
  return *r.gops / *r.gops_1thread;
}

inline std::string to_json(const ShapeRecord& r) {
  return fmt::format(
      "{{\"m\": {}, \"n\": {}, \"k\": {}, \"threads\": {}, \"isa\": \"{}\", \"kernel\": \"{}\", "
      "\"gops\": {}, \"s8_gops\": {}, \"dynamic_gops\": {}, \"peak_gops\": {}, "
      "\"bound_gops\": {}, \"bandwidth_gbs\": {}, \"onednn_gops\": {}, \"onednn_s8_gops\": {}, "
      "\"fp32_gops\": {}, \"sparq_fp32_gops\": {}, \"fp32_peak_gops\": {}, \"gops_1thread\": {}, "
      "\"speedup_vs_1thread\": {}, \"sparse_gops\": {}, \"sparse_path\": {}, \"pack_ms\": {:.2f}}}",
      r.m, r.n, r.k, r.threads, r.isa, r.kernel, json_number(r.gops), json_number(r.s8_gops),
      json_number(r.dynamic_gops), json_number(r.peak_gops), json_number(r.bound_gops),
      json_number(r.bandwidth_gbs), json_number(r.onednn_gops), json_number(r.onednn_s8_gops),
      json_number(r.fp32_gops), json_number(r.sparq_fp32_gops), json_number(r.fp32_peak_gops),
      json_number(r.gops_1thread), json_number(speedup_vs_1thread(r)), json_number(r.sparse_gops),
      r.sparse_path ? fmt::format("\"{}\"", *r.sparse_path) : std::string("null"), r.pack_ms);
}

/// Bandwidth/compute bound: the shape's ops over the time to read its bytes
/// (packed weights + activations + int32 output), capped by the peak.
inline std::optional<double> bound_gops(const ShapeRecord& r, std::size_t weight_bytes,
                                        double bandwidth) {
  const double ops = 2.0 * static_cast<double>(r.m * r.n * r.k);
  const double bytes = static_cast<double>(weight_bytes) + static_cast<double>(r.m * r.k) +
                       4.0 * static_cast<double>(r.m * r.n);
  const double mem_gops = ops / (bytes / bandwidth) / 1e9;
  if (!r.peak_gops) return mem_gops;
  return std::min(*r.peak_gops, mem_gops);
}

inline double gops(int64_t m, int64_t n, int64_t k, double seconds) {
  return 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) / seconds /
         1e9;
}

/// sgemm_peak_gops for `isa`, probed once per ISA per process (~0.1 s each).
inline std::optional<double> sgemm_peak_gops_cached(Isa isa) {
  static std::optional<double> cache[32];
  static bool done[32] = {};
  const auto i = static_cast<std::size_t>(isa) % 32;
  if (!done[i]) {
    cache[i] = sgemm_peak_gops(isa);
    done[i] = true;
  }
  return cache[i];
}

/// The FP32 side of one shape of `sparq bench gemm`, filling r.sparq_fp32_gops
/// (sparq::sgemm on the active ISA, weights packed once, no bias), r.fp32_gops
/// (the Eigen peer, when the CPU can run it; see fp32_peer.hpp) and
/// r.fp32_peak_gops (probe x threads). The two GEMMs are timed interleaved,
/// median of `repeat`, so load from other jobs hits both alike. Random data
/// in [-1, 1]: FP32 speed does not depend on the values (no denormals).
inline void measure_fp32(ShapeRecord& r, int threads, int repeat) {
  const int64_t m = r.m, n = r.n, k = r.k;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> a(static_cast<std::size_t>(m * k)), w(static_cast<std::size_t>(n * k));
  std::vector<float> c(static_cast<std::size_t>(m * n));
  for (float& v : a) v = u(rng);
  for (float& v : w) v = u(rng);
  const PackedWeightsF32 packed = pack_weights_f32(w.data(), n, k, WeightLayout::out_in);
  const GemmOptions options{threads};
  std::vector<std::function<void()>> fns;
  fns.emplace_back([&] { sgemm(a.data(), m, k, k, packed, {}, false, c.data(), n, options); });
  std::optional<Fp32Gemm> eigen;
  if (!Fp32Gemm::unavailable()) {  // else fp32_gops stays null: the peer needs AVX2+FMA
    eigen.emplace(m, n, k, threads);
    fns.emplace_back([&] { eigen->run(); });
  }
  const std::vector<double> secs = median_seconds_interleaved(fns, std::max(1, repeat));
  r.sparq_fp32_gops = gops(m, n, k, secs[0]);
  if (eigen) r.fp32_gops = gops(m, n, k, secs[1]);
  if (const auto peak = sgemm_peak_gops_cached(active_isa())) r.fp32_peak_gops = *peak * threads;
}

#if defined(SPARQ_HAVE_ONEDNN)
/// oneDNN matmul src (m x k, u8 or s8) x weights (k x n, s8) -> s32, with the
/// weights reordered once into the layout the primitive prefers
/// (format_tag::any): the pre-packed case sparq's pack_weights corresponds to.
class OneDnnGemm {
 public:
  OneDnnGemm(int64_t m, int64_t n, int64_t k, bool s8_src, int threads)
      : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_), threads_(threads) {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const dnnl::memory::desc a_md({m, k}, s8_src ? dt::s8 : dt::u8, tag::ab);
    const dnnl::memory::desc w_user_md({k, n}, dt::s8, tag::ab);
    const dnnl::memory::desc w_any_md({k, n}, dt::s8, tag::any);
    const dnnl::memory::desc c_md({m, n}, dt::s32, tag::ab);
    set_threads();
    const dnnl::matmul::desc desc(a_md, w_any_md, c_md);
    const dnnl::matmul::primitive_desc pd(desc, engine_);
    a_ = dnnl::memory(a_md, engine_);
    c_ = dnnl::memory(c_md, engine_);
    dnnl::memory w_user(w_user_md, engine_);
    w_ = dnnl::memory(pd.weights_desc(), engine_);
    std::mt19937 rng(3);
    auto fill = [&](dnnl::memory& mem, std::size_t bytes) {
      auto* p = static_cast<uint8_t*>(mem.get_data_handle());
      for (std::size_t i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(rng() & 0x7F);
    };
    fill(a_, static_cast<std::size_t>(m * k));
    fill(w_user, static_cast<std::size_t>(k * n));
    dnnl::reorder(w_user, w_).execute(stream_, w_user, w_);
    stream_.wait();
    matmul_ = dnnl::matmul(pd);
    impl_ = pd.impl_info_str();
  }
  void run() {
    set_threads();
    matmul_.execute(stream_, {{DNNL_ARG_SRC, a_}, {DNNL_ARG_WEIGHTS, w_}, {DNNL_ARG_DST, c_}});
    stream_.wait();
  }
  const std::string& impl() const { return impl_; }

 private:
  void set_threads() const {
#if defined(_OPENMP)
    omp_set_num_threads(threads_);
#endif
  }
  dnnl::engine engine_;
  dnnl::stream stream_;
  dnnl::memory a_, w_, c_;
  dnnl::matmul matmul_;
  int threads_;
  std::string impl_;
};
#endif

}  // namespace sparq::tool::gemm_bench
