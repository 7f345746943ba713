// AMX-INT8 microkernel: up to 32 rows x 64 columns per call on 16x16 int32
// accumulator tiles (tdpbusd), reading the avx512vnni weight panels as they
// are. The kernel body is gemm_u8s8s32_ukernel_32x64c4__amx.inc, shared
// with the emulated build in reference/ (tested on every CI host); this file
// only maps the tile-ops layer onto the real instructions.
#include <immintrin.h>

#include "kernels/gemm_kernels.hpp"

#define SPARQ_TILE_CONFIG(cfg) _tile_loadconfig(cfg)
#define SPARQ_TILE_ZERO(t) _tile_zero(t)
#define SPARQ_TILE_LOAD(t, ptr, stride) _tile_loadd(t, ptr, stride)
#define SPARQ_TILE_STORE(t, ptr, stride) _tile_stored(t, ptr, stride)
#define SPARQ_TILE_DPBUSD(c, a, b) _tile_dpbusd(c, a, b)
#define SPARQ_AMX_UKERNEL_NAME gemm_u8s8s32_ukernel_32x64c4__amx

#include "kernels/amx/gemm_u8s8s32_ukernel_32x64c4__amx.inc"
