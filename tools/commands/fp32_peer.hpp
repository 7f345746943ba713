// The FP32 peer of `sparq bench gemm` (tools/commands/bench.cpp) and of
// bench_gemm (bench/gemm.cpp): Eigen's float GEMM C = A * B on the shape the
// INT8 GEMM is timed on, the number an INT8 kernel has to beat.
//
// Why it lives in its own translation unit, fp32_peer_eigen.cpp: Eigen picks
// its SIMD code at compile time from the compiler's target flags, and both
// programs are built for the x86-64 baseline (SSE2), where Eigen's float
// GEMM runs at a fraction of what the same core does with AVX2 + FMA. A peer
// that understates FP32 overstates INT8's speedup. So on x86 that one file
// is compiled with -mavx2 -mfma (set_source_files_properties in
// tools/CMakeLists.txt and bench/CMakeLists.txt; the file refuses to compile
// without them) and is only ever called after the CPU reported AVX2 and FMA
// (Fp32Gemm::unavailable() below, which runs in the caller's baseline code).
// On other architectures the file is compiled with the program's flags
// (NEON is part of the aarch64 baseline) and the peer is always available.
//
// ODR: Eigen is header-only, and every function it instantiates is a weak
// symbol of which the linker keeps ONE copy per name for the whole program.
// The library itself no longer uses Eigen (its FP32 layers run on
// sparq::sgemm, which `sparq bench gemm` reports as sparq_fp32_gops next to
// this peer), but any other Eigen user linked into these programs at the
// baseline flags would share those names: the linker could hand it the AVX2
// copy (SIGILL on a CPU without AVX2) or hand the peer the SSE2 copy (slow,
// silently). Anonymous namespaces around the caller do not help: the
// templates are Eigen's. Hence:
//   * fp32_peer_eigen.cpp renames Eigen's namespace for itself
//     (`#define Eigen sparq_fp32_peer_Eigen` before its Eigen include), so
//     none of its Eigen symbols can merge with anyone else's; check with
//     `nm -C <program> | grep sparq_fp32_peer_Eigen`;
//   * no other file of these programs includes Eigen at -mavx2 (bench.cpp
//     and bench_gemm.hpp no longer include it at all);
//   * its interface (fp32_peer_eigen.hpp) is plain functions over an opaque
//     handle, and it includes nothing of sparq's, so the object defines no
//     weak symbol outside its Eigen namespace (`nm` on it shows only those
//     and the three functions).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

#include "fp32_peer_eigen.hpp"
#include "sparq/error.hpp"
#include "sparq/isa.hpp"

namespace sparq::tool::gemm_bench {

/// Eigen float GEMM C = A * B (row-major, A: m x k and B: k x n random,
/// C: m x n), Eigen's own threads set to `threads`.
class Fp32Gemm {
 public:
  /// Why the peer cannot run on this CPU ("needs avx2+fma"), or nullopt when
  /// it can. On x86 the peer is AVX2 + FMA code: cpu_info() reports both
  /// only when the CPU has them and the OS saves the YMM state (XCR0).
  static std::optional<std::string> unavailable() {
#if defined(__x86_64__) || defined(_M_X64)
    const auto& features = cpu_info().features;
    auto has = [&](const char* name) {
      return std::find(features.begin(), features.end(), name) != features.end();
    };
    if (!has("avx2") || !has("fma")) return std::string("needs avx2+fma");
#endif
    return std::nullopt;
  }

  /// Allocates and fills the matrices. Precondition: unavailable() is
  /// nullopt (the constructor checks it again and throws sparq::Error
  /// rather than run AVX2 code on a CPU without it).
  Fp32Gemm(int64_t m, int64_t n, int64_t k, int threads) {
    if (const auto why = unavailable()) {
      sparq::detail::fail(
          "Fp32Gemm: this CPU cannot run the FP32 peer ({}); expected a caller that checked "
          "Fp32Gemm::unavailable() first",
          *why);
    }
    state_ = fp32_peer_detail::eigen_gemm_create(m, n, k, threads);
  }
  ~Fp32Gemm() { fp32_peer_detail::eigen_gemm_destroy(state_); }
  Fp32Gemm(const Fp32Gemm&) = delete;
  Fp32Gemm& operator=(const Fp32Gemm&) = delete;

  /// One GEMM; C is overwritten.
  void run() { fp32_peer_detail::eigen_gemm_run(state_); }

 private:
  fp32_peer_detail::EigenGemmState* state_ = nullptr;
};

}  // namespace sparq::tool::gemm_bench
