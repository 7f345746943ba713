// FP32 GEMM kernel interface: plain structs and function pointers, one table
// per ISA (the FP32 twin of gemm_kernels.hpp; same rules: no inline
// templates here, ISA files include only this header and the intrinsics
// header of their ISA; see docs/design.md).
//
// Packed weight layout (made once by sparq::pack_weights_f32, portable code):
//   N is split into panels of NR output channels, the last one zero-padded.
//   Panel p is stored contiguously as [K][NR] floats:
//       panel(p)[k * NR + j] = W[p * NR + j][k]
//   so any K block [k0, k0 + kc) of a panel is one contiguous run of kc * NR
//   floats, and the driver can pick its K block at run time without the
//   packing knowing it.
//
// Packed activation layout (made by the driver per K block): rows are split
// into tiles of MR rows (the last one zero-padded to MR); a tile is
// [kc][MR] floats:  tile[k * MR + i] = A[i][k0 + k].
//
// Direct-A kernels (SgemmKernels::ukernel_direct) read A in place instead:
// a(i, k) = a[i * lda + k], rows lda >= kc apart, only rows i < mr.
//
// Microkernel contract (SgemmUkernelFn): for i < mr, j < nr
//   acc = (first ? (bias ? bias[j] : 0) : c[i * ldc + j]) + sum_{k < kc} a(i, k) * w(k, j)
//   c[i * ldc + j] = relu ? max(acc, 0) : acc
// The sum runs in increasing k with one fused multiply-add per term (the
// scalar kernel uses std::fma), so the rounding is the same for every tile
// of every thread count; different ISAs may round differently only where
// their compilers contract differently (they all use FMA explicitly).
#pragma once

#include <cstdint>

#include "sparq/isa.hpp"

namespace sparq::detail {

struct SgemmUkernelParams {
  const float* a = nullptr;     ///< packed A tile: [kc][MR] (direct kernels: A(row 0, k0))
  const float* w = nullptr;     ///< packed weight panel, K block: [kc][NR]
  int64_t kc = 0;               ///< > 0
  int mr = 0;                   ///< rows stored, 1..MR
  int nr = 0;                   ///< columns stored, 1..NR
  float* c = nullptr;           ///< output tile, row-major
  int64_t ldc = 0;              ///< in elements
  int64_t lda = 0;              ///< direct kernels only: A's row stride, in elements
  const float* bias = nullptr;  ///< nr values or nullptr; read only when first
  bool first = true;            ///< first K block: start from bias (or 0), not from c
  bool relu = false;            ///< last K block: clamp at 0 before storing
};
using SgemmUkernel = void(const SgemmUkernelParams&) noexcept;
using SgemmUkernelFn = SgemmUkernel*;

/// One ISA's FP32 GEMM: tile sizes, the K block and the microkernel.
struct SgemmKernels {
  Isa isa = Isa::scalar;
  const char* ukernel_name = "";  ///< e.g. "sgemm_f32_ukernel_14x32__avx512f"
  int mr = 0;
  int nr = 0;
  /// Largest K block: the packed A tile (MR x kc) stays in L1 while the
  /// weight block streams from L2 (see src/gemm/sgemm.cpp).
  int64_t kc = 0;
  SgemmUkernelFn ukernel = nullptr;
  /// The same microkernel reading A in place (a(i, k) = a[i * lda + k], no
  /// packing), or nullptr where the ISA has none. Same contract and the same
  /// FMAs in the same order as `ukernel`, hence the same bits.
  SgemmUkernelFn ukernel_direct = nullptr;
};

/// The table for `isa`. ISAs without FP32 kernels of their own use the
/// nearest one they can run (avxvnni: AVX2's; a newer x86 ISA: AVX-512's if
/// the CPU has it, else AVX2's; neondot/neoni8mm: NEON's). Defined in
/// src/gemm/sgemm_kernels.cpp.
const SgemmKernels& sgemm_kernels(Isa isa);

/// Threads the last sgemm() call of this process ran on (the OpenMP team
/// size inside its parallel region; 1 without OpenMP). Lets tests observe
/// that sparq::set_num_threads governs the FP32 layers. Defined in
/// src/gemm/sgemm.cpp.
int sgemm_last_threads() noexcept;
/// True when the library was built with OpenMP (sgemm can use threads).
bool sgemm_has_threads() noexcept;

// --- kernels, by ISA (defined in src/kernels/<isa>/<name>.cpp) -------------
SgemmUkernel sgemm_f32_ukernel_4x8__scalar, sgemm_f32_ukernel_6x16__avx2fma,
    sgemm_f32_ukernel_6x16__avx2fma_direct, sgemm_f32_ukernel_14x32__avx512f,
    sgemm_f32_ukernel_8x8__neon;

}  // namespace sparq::detail
