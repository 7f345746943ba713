// GEMM kernel interface: plain structs and function pointers, one table per ISA.
//
// Everything here is shared between the portable driver (src/gemm/gemm.cpp)
// and the ISA-flagged kernel files (src/kernels/<isa>/gemm_*.cpp). It must
// stay free of inline templates (docs/design.md rule 1): ISA files include only
// this header and <immintrin.h>/<arm_neon.h>.
//
// Packed weight layout (chosen per ISA by its table below):
//   N is split into panels of NR output channels (the last one zero-padded),
//   K is padded with zeros to kp = round_up(K, KR). Panel p is stored
//   contiguously as [kp / KR][NR][KR] int8:
//       panel(p)[(k / KR) * NR * KR + j * KR + (k % KR)] = W[p * NR + j][k]
//   so one KR-group of one panel is NR*KR consecutive bytes: for AVX-512 VNNI
//   (NR = 64, KR = 4) that is four zmm, each feeding one vpdpbusd of 16
//   output channels. Panels follow each other: the whole buffer is read
//   front to back by a call that covers all of N (streaming, prefetch-friendly).
//   An ARM kernel picks its own NR/KR (e.g. KR = 8 for i8mm: [kp/8][NR][8]
//   puts two 8-byte column groups in one q register).
//
// Packed activation layout (made by the table's pack_a): rows are split into
// tiles of at most MR rows; a tile of mr rows is [kp / KR][mr][KR] bytes
//   tile[(k / KR) * mr * KR + i * KR + (k % KR)] = A[i][k] + shift
// zero-padded in k. x86 kernels read u8; the shift (see GemmKernels) turns
// s8 activations into u8 exactly (a + 128), so the inner loop never shifts.
//
// The AMX table (gemm_u8s8s32_ukernel_32x64c4__amx, docs/gemm.md "AMX")
// reads the avx512vnni weight layout above as it is (NR = 64, KR = 4), but
// its pack_a (gemm_pack_a_k64__scalar) makes 64-byte k-groups, the row of an
// A tile, with the last group only kp % 64 bytes wide when 64 does not
// divide kp: [kp / 64][mr][64] then [mr][kp % 64]. That is still exactly
// mr * kp bytes per tile, and the part from any k0 that is a multiple of 64
// starts at byte k0 * mr, so the driver's offsets are the same as for every
// other table.
//
// Microkernel contract (GemmUkernelFn): for i < mr, j < nr
//   c[i * ldc + j] = sum_{k < kp} a(i, k) * w(j, k) - a_zero_point[i] * col_sums[j]
// in wrapping (mod 2^32) int32 arithmetic; col_sums == nullptr means no
// compensation. The result equals the exact value whenever that value fits in
// int32, which the driver guarantees by splitting K (kMaxKChunk).
#pragma once

#include <cstddef>
#include <cstdint>

#include "sparq/isa.hpp"

namespace sparq::detail {

/// Largest K one microkernel call may reduce: 255 * 128 * K <= 2^31 - 1
/// (u8 x s8 worst case |a * w| = 255 * 128), rounded down to a multiple of 64
/// so every KR in use divides it.
inline constexpr int64_t kMaxKChunk = 65792;

struct GemmUkernelParams {
  const uint8_t* a = nullptr;             ///< packed A tile: [kp/KR][mr][KR]
  const int8_t* w = nullptr;              ///< packed weight panel: [kp/KR][NR][KR]
  int64_t kp = 0;                         ///< K of this call, a multiple of KR, > 0
  int mr = 0;                             ///< rows, 1..MR
  int nr = 0;                             ///< columns stored, 1..NR
  int32_t* c = nullptr;                   ///< output tile, row-major
  int64_t ldc = 0;                        ///< in elements
  const int32_t* a_zero_point = nullptr;  ///< mr values, in packed-A units
  const int32_t* col_sums = nullptr;      ///< NR values (padded), or nullptr
  /// Optional: cache lines [w_prefetch, w_prefetch + 64 * prefetch_lines) to
  /// bring into L2 during this call (a share of the next weight panel, so
  /// that panel's first row tile does not wait on L3/DRAM). Kernels may
  /// ignore it.
  const int8_t* w_prefetch = nullptr;
  int64_t prefetch_lines = 0;
};
// A kernel's function type, so each declaration below is one name (the
// definitions spell the signature out).
using GemmUkernel = void(const GemmUkernelParams&) noexcept;
using GemmUkernelFn = GemmUkernel*;

/// Packs rows [0, mr) of A (u8 or s8 bytes, row stride lda) into one tile
/// of `kr`-groups, adding `shift` (mod 256) to every byte, zero-padding k up
/// to kp.
struct GemmPackAParams {
  const uint8_t* a = nullptr;  ///< first row (s8 data passed as bytes)
  int64_t lda = 0;
  int64_t k = 0;
  int64_t kp = 0;
  int mr = 0;
  int kr = 0;
  uint8_t shift = 0;  ///< 0 or 128 (x86: s8 -> u8)
  uint8_t* dst = nullptr;
};
using GemmPackA = void(const GemmPackAParams&) noexcept;
using GemmPackAFn = GemmPackA*;

/// The int32 tile (rows x cols, row stride ld_acc) an output stage reads.
/// Plain data (no tail padding), so a stage's parameters keep the layout
/// they had with these fields written out.
struct GemmAccTile {
  const int32_t* acc = nullptr;
  int64_t ld_acc = 0;
  int rows = 0;
  int cols = 0;
};

/// Requantizes an int32 tile (rows x cols) to 8 bits, bit-exactly as
/// sparq::requantize(saturate_int32(acc + bias[j]), m[j], zp, qmin, qmax)
/// where the bias add saturates to int32 (see gemm.hpp).
struct GemmRequantizeParams : GemmAccTile {
  const int32_t* multiplier = nullptr;  ///< cols values (per-tensor: repeated), each >= 0
  const int32_t* shift = nullptr;       ///< cols values in [-31, 30]
  const int32_t* bias = nullptr;        ///< cols values or nullptr
  int32_t zero_point = 0;
  int32_t qmin = 0;
  int32_t qmax = 0;
  void* out = nullptr;  ///< uint8_t or int8_t, by the function used
  int64_t ld_out = 0;
  /// Optional residual input (sparq::ResidualInput): with `residual` set,
  /// the value requantized is
  ///   saturate_int32(acc + bias[j] + multiply_by_quantized_multiplier(
  ///       r[i][j] - residual_zero_point, {residual_multiplier[j], residual_shift[j]}))
  /// with one saturation (the sum in int64).
  const uint8_t* residual = nullptr;  ///< rows x cols bytes (s8 data as bytes)
  int64_t residual_ld = 0;
  bool residual_signed = false;
  int32_t residual_zero_point = 0;
  const int32_t* residual_multiplier = nullptr;  ///< cols values
  const int32_t* residual_shift = nullptr;       ///< cols values
};
using GemmRequantize = void(const GemmRequantizeParams&) noexcept;
using GemmRequantizeFn = GemmRequantize*;

/// Dequantizes an int32 tile to float:
///   y = fma(float(acc), row_scale[i] * col_scale[j], bias[j]) ; relu: y > 0 ? y : 0
/// (one float product, one fused multiply-add: identical on every ISA).
struct GemmDequantizeParams : GemmAccTile {
  const float* row_scale = nullptr;  ///< rows values
  const float* col_scale = nullptr;  ///< cols values
  const float* bias = nullptr;       ///< cols values or nullptr (0)
  bool relu = false;
  float* out = nullptr;
  int64_t ld_out = 0;
};
using GemmDequantize = void(const GemmDequantizeParams&) noexcept;
using GemmDequantizeFn = GemmDequantize*;

/// One ISA's GEMM: tile sizes, packing and kernels. The packed weights
/// record (isa, nr, kr), so a table change never misreads old packs.
struct GemmKernels {
  Isa isa = Isa::scalar;
  const char* ukernel_name = "";  ///< e.g. "gemm_u8s8s32_ukernel_6x64c4__avx512vnni"
  int mr = 0;
  int nr = 0;
  int kr = 0;
  /// Added to u8 / s8 activation bytes while packing (mod 256); the driver
  /// adds the same to the zero point. x86: u8 +0, s8 +128.
  uint8_t a_shift_u8 = 0;
  uint8_t a_shift_s8 = 128;
  /// Bytes per packed activation element: 1 (u8), or 2 when pack_a widens
  /// to int16 (AVX2: the kernel then broadcasts 4 int16 straight into
  /// vpmaddwd instead of widening every broadcast). GemmUkernelParams::a and
  /// GemmPackAParams::dst then point at int16 data.
  int a_elem_bytes = 1;
  GemmUkernelFn ukernel = nullptr;
  GemmPackAFn pack_a = nullptr;
  GemmRequantizeFn requantize_u8 = nullptr;
  GemmRequantizeFn requantize_s8 = nullptr;
  GemmDequantizeFn dequantize = nullptr;
  /// Per-call choice: calls with M < small_m_below run `*small_m` instead
  /// (AMX: a tile holds 16 rows, so a few rows run faster on the AVX-512
  /// VNNI kernel). Its weight layout must be this table's (same nr and kr),
  /// so the choice never repacks.
  const GemmKernels* small_m = nullptr;
  int64_t small_m_below = 0;
};

/// The table for `isa`, or for the next lower level of its fallback chain
/// (src/dispatch/kernel_list.hpp) when this build has no table for it.
/// Defined in src/gemm/gemm_kernels.cpp.
const GemmKernels& gemm_kernels(Isa isa);

/// The table that runs a GEMM call of m rows on `isa`: gemm_kernels(isa),
/// or its small_m table below its threshold. `sparq bench` prints its name.
const GemmKernels& gemm_kernels_for(Isa isa, int64_t m);

/// Whether weights packed with panels of `nr` channels and k-groups of `kr`
/// can be read by `kern` as they are (the ISA they were packed under does
/// not matter: the avx512vnni and amx tables share one layout).
inline bool layout_compatible(const GemmKernels& kern, int nr, int kr) noexcept {
  return kern.nr == nr && kern.kr == kr;
}

/// The AMX table built against the tile-instruction emulation
/// (src/kernels/reference/gemm_u8s8s32_ukernel_32x64c4__amxemu.cpp): the
/// same kernel source as the real one, runnable on every host. For tests.
const GemmKernels& gemm_kernels_amx_emulated();

/// Tests only: while alive, gemm_kernels() and gemm_kernels_for() return
/// `table` whatever the ISA asked for, so the whole GEMM (packing, driver,
/// threads, output stages) runs on it. Not for concurrent use with other
/// overrides (the override is global, like ScopedIsa).
class ScopedGemmKernelsOverride {
 public:
  explicit ScopedGemmKernelsOverride(const GemmKernels& table);
  ~ScopedGemmKernelsOverride();
  ScopedGemmKernelsOverride(const ScopedGemmKernelsOverride&) = delete;
  ScopedGemmKernelsOverride& operator=(const ScopedGemmKernelsOverride&) = delete;

 private:
  const GemmKernels* previous_;
};

// --- kernels, by ISA (defined in src/kernels/<isa>/<name>.cpp) -------------
// The output stages of one ISA folder (gemm_requantize__<isa>.cpp and
// gemm_dequantize__<isa>.cpp).
#define SPARQ_DECLARE_GEMM_OUTPUT_STAGES(isa)                          \
  GemmRequantize gemm_requantize_u8__##isa, gemm_requantize_s8__##isa; \
  GemmDequantize gemm_dequantize__##isa;

SPARQ_DECLARE_GEMM_OUTPUT_STAGES(scalar)
SPARQ_DECLARE_GEMM_OUTPUT_STAGES(avx2)
SPARQ_DECLARE_GEMM_OUTPUT_STAGES(avx512vnni)
// ARM (docs/arm.md): the NEON output stages serve all three ARM tables.
SPARQ_DECLARE_GEMM_OUTPUT_STAGES(neon)

#undef SPARQ_DECLARE_GEMM_OUTPUT_STAGES

// Defines the two requantize stages of an ISA folder from its
// requantize_tile<T> (T = uint8_t or int8_t: the output's storage type).
#define SPARQ_DEFINE_GEMM_REQUANTIZE(isa)                                  \
  void gemm_requantize_u8__##isa(const GemmRequantizeParams& p) noexcept { \
    requantize_tile<uint8_t>(p);                                           \
  }                                                                        \
  void gemm_requantize_s8__##isa(const GemmRequantizeParams& p) noexcept { \
    requantize_tile<int8_t>(p);                                            \
  }

// Activation packing: the portable byte packer, AVX2's int16 widening one,
// and AMX's k64 groups (docs/gemm.md).
GemmPackA gemm_pack_a__scalar, gemm_pack_a_s16__avx2, gemm_pack_a_k64__scalar;

// Microkernels, one per table; AMX's source is also built against the tile
// emulation (reference/, no ISA flags) under the __amxemu name.
GemmUkernel gemm_u8s8s32_ukernel_4x8c4__scalar, gemm_u8s8s32_ukernel_6x8c4__avx2,
    gemm_u8s8s32_ukernel_6x16c4__avxvnni, gemm_u8s8s32_ukernel_6x64c4__avx512vnni,
    gemm_u8s8s32_ukernel_32x64c4__amx, gemm_u8s8s32_ukernel_32x64c4__amxemu,
    gemm_u8s8s32_ukernel_4x4c8__neon, gemm_u8s8s32_ukernel_8x8c4__neondot,
    gemm_u8s8s32_ukernel_8x8c8__neoni8mm;

}  // namespace sparq::detail
