// 2:4 sparse GEMM kernel interface: plain structs and function pointers,
// one table per ISA (docs/design.md rules 1 and 2). Packed sparse layout: see
// include/sparq/detail/packed_sparse_weights_data.hpp.
//
// Direct microkernel contract (SpgemmUkernelFn): activations are packed by
// the portable byte packer gemm_pack_a__scalar with the table's a_kr (8 or
// 64), i.e. a tile [kp_a / a_kr][mr][a_kr] of u8 (s8 already shifted by
// +128), kp_a = round_up(kp, a_kr), zero-padded. For i < mr, j < nr:
//   c[i * ldc + j] = sum_{s < steps} sum_{t < 4}
//                      a(i, 8s + pos(j, s, t)) * value(j, s, t)
//                    - a_zero_point[i] * col_sums[j]
// in wrapping int32 arithmetic (col_sums == nullptr: no compensation); it
// equals the exact value whenever that fits, which the driver guarantees by
// splitting K at kMaxKChunk, as for the dense kernels.
//
// Expand contract (SpgemmExpandFn): writes `steps` steps of one sparse panel
// of width panel_nr as the dense layout [2 * steps][panel_nr][4] int8
// (gemm_kernels.hpp), pruned positions 0, so the dense microkernel of the
// same ISA (whose nr must equal panel_nr and kr 4) can run on it.
#pragma once

#include <cstdint>

#include "kernels/gemm_kernels.hpp"

namespace sparq::detail {

struct SpgemmUkernelParams {
  const uint8_t* a = nullptr;  ///< packed A tile [kp_a / a_kr][mr][a_kr]
  const int8_t* w = nullptr;   ///< sparse panel at its first step
  int64_t steps = 0;           ///< > 0
  int panel_nr = 0;            ///< the panel width the layout was packed with
  int mr = 0;                  ///< rows, 1..MR
  int nr = 0;                  ///< columns stored, 1..panel_nr
  int32_t* c = nullptr;
  int64_t ldc = 0;
  const int32_t* a_zero_point = nullptr;  ///< mr values, in packed-A units
  const int32_t* col_sums = nullptr;      ///< panel_nr values, or nullptr
};
using SpgemmUkernel = void(const SpgemmUkernelParams&) noexcept;
using SpgemmUkernelFn = SpgemmUkernel*;

struct SpgemmExpandParams {
  const int8_t* w = nullptr;  ///< sparse panel at its first step
  int64_t steps = 0;
  int panel_nr = 0;
  int8_t* dst = nullptr;  ///< 8 * steps * panel_nr bytes
};
using SpgemmExpand = void(const SpgemmExpandParams&) noexcept;
using SpgemmExpandFn = SpgemmExpand*;

/// One ISA's sparse GEMM.
struct SparseGemmKernels {
  Isa isa = Isa::scalar;
  const char* ukernel_name = "";
  const char* expand_name = "";
  int mr = 0;    ///< rows of the direct microkernel
  int nr = 0;    ///< panel width: the dense table's nr of the same ISA
  int a_kr = 8;  ///< activation bytes per row and group of the direct kernel's A tile
  /// Largest M for which `automatic` picks the direct path (measured), for
  /// weights beyond L2 and for weights that fit in L2 (where nothing is
  /// bandwidth-bound and expansion, spread over many rows, wins sooner).
  int64_t direct_max_m = 0;
  int64_t direct_max_m_in_l2 = 0;
  SpgemmUkernelFn ukernel = nullptr;
  SpgemmExpandFn expand = nullptr;
};

/// The table for `isa`, or for the next lower level of its fallback chain
/// (src/dispatch/kernel_list.hpp; neon ends at the scalar table, panel width
/// 8: the driver then runs the direct path whenever the dense table's nr/kr
/// do not fit the expand kernel, e.g. neon's 4x4c8). Defined in
/// src/gemm/sparse_gemm_kernels.cpp.
const SparseGemmKernels& sparse_gemm_kernels(Isa isa);
/// The avx512vnni table for CPUs without VBMI (scalar table in builds
/// without AVX-512), so tests can run it on a VBMI host too.
const SparseGemmKernels& sparse_gemm_kernels_without_vbmi();

// --- kernels, by ISA (defined in src/kernels/<isa>/<name>.cpp) -------------
// The scalar kernels take any panel width (they serve ISAs without their
// own). AVX-512 VNNI has two direct kernels: without VBMI (AVX-512BW index
// expansion, vpshufb, a_kr 8) and with it (vpmultishiftqb, vpermb over
// 64-input windows, a_kr 64; used when the CPU reports VBMI), which also
// has a vectorised expand.
SpgemmUkernel spgemm_u8s8s32_ukernel_4xNc8__scalar, spgemm_u8s8s32_ukernel_4x8c8__avx2,
    spgemm_u8s8s32_ukernel_4x64c8__avx512vnni, spgemm_u8s8s32_ukernel_16x64c64__avx512vbmi,
    spgemm_u8s8s32_ukernel_4x8c8__neondot;
SpgemmExpand spgemm_expand_Nc4__scalar, spgemm_expand_64c4__avx512vbmi;

}  // namespace sparq::detail
