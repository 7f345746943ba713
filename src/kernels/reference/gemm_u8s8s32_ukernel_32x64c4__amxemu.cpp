// The AMX microkernel source (src/kernels/amx/*.inc) built against a small
// emulation of the AMX tile instructions, so machines without AMX (every CI
// host) run and test it. Portable C++, compiled without ISA flags.
//
// The emulation follows Intel's documented semantics (Intel 64 and IA-32
// SDM vol. 2, LDTILECFG / TILELOADD / TILESTORED / TILEZERO / TDPBUSD, and
// the Intel Architecture Instruction Set Extensions reference), including
// the checks for which the hardware raises #UD: a violation aborts with a
// message, since on real AMX the same kernel would crash.
//   - ldtilecfg, palette 1: 8 tiles, each `rows` <= 16 rows of `colsb` <= 64
//     bytes; reserved bytes and the entries of tiles 8-15 must be zero;
//     loading a configuration zeroes every tile.
//   - tileloadd: row r of the tile = colsb bytes at base + r * stride; the
//     bytes beyond colsb and the rows beyond `rows` read as zero.
//   - tilestored: the inverse, rows x colsb bytes.
//   - tdpbusd dst, a, b: for m < dst.rows, n < dst.colsb / 4,
//       dst[m][n] += sum over k < a.colsb / 4, i < 4 of
//                    zero_extend(a[m][4k+i]) * sign_extend(b[k][4n+i])
//     in wrapping 32-bit arithmetic; requires distinct tiles, dst.rows ==
//     a.rows, a.colsb / 4 == b.rows, dst.colsb == b.colsb.
// Tile state is per thread, as the hardware's is per logical CPU.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kernels/gemm_kernels.hpp"

namespace sparq::detail {
namespace {
namespace amx_emu {

constexpr int kTiles = 8;
constexpr int kMaxRows = 16;
constexpr int kMaxColsb = 64;

struct Tile {
  int rows = 0;
  int colsb = 0;
  uint8_t data[kMaxRows][kMaxColsb] = {};
};

struct State {
  bool configured = false;
  Tile tile[kTiles];
};

thread_local State g_state;

[[noreturn]] void fault(const char* instruction, const char* what, int t) {
  std::fprintf(stderr, "AMX emulation: %s: %s (tile %d): the hardware raises #UD here\n",
               instruction, what, t);
  std::abort();
}

Tile& configured_tile(const char* instruction, int t) {
  if (!g_state.configured) fault(instruction, "no tile configuration loaded", t);
  if (t < 0 || t >= kTiles) fault(instruction, "no such tile", t);
  Tile& tile = g_state.tile[t];
  if (tile.rows == 0 || tile.colsb == 0) fault(instruction, "tile not configured", t);
  return tile;
}

void loadconfig(const void* config) {
  uint8_t b[64];
  std::memcpy(b, config, 64);
  State next;
  if (b[0] == 0) {  // palette 0: the init state, tiles unusable
    g_state = next;
    return;
  }
  if (b[0] != 1) fault("ldtilecfg", "palette other than 1", -1);
  for (int i = 1; i < 16; ++i) {
    if (b[i] != 0) fault("ldtilecfg", "start_row or reserved byte not zero", -1);
  }
  for (int t = 0; t < 16; ++t) {
    uint16_t colsb;
    std::memcpy(&colsb, b + 16 + 2 * t, 2);
    const int rows = b[48 + t];
    if (t >= kTiles) {
      if (colsb != 0 || rows != 0) fault("ldtilecfg", "palette 1 has 8 tiles", t);
      continue;
    }
    if (rows > kMaxRows || colsb > kMaxColsb) fault("ldtilecfg", "tile larger than 16x64", t);
    if ((rows == 0) != (colsb == 0)) fault("ldtilecfg", "rows and colsb must both be 0 or not", t);
    next.tile[t].rows = rows;
    next.tile[t].colsb = colsb;
  }
  next.configured = true;
  g_state = next;
}

void zero(int t) {
  Tile& tile = configured_tile("tilezero", t);
  std::memset(tile.data, 0, sizeof(tile.data));
}

void load(int t, const void* base, int64_t stride) {
  Tile& tile = configured_tile("tileloadd", t);
  std::memset(tile.data, 0, sizeof(tile.data));
  const auto* src = static_cast<const uint8_t*>(base);
  for (int r = 0; r < tile.rows; ++r) std::memcpy(tile.data[r], src + r * stride, tile.colsb);
}

void store(int t, void* base, int64_t stride) {
  const Tile& tile = configured_tile("tilestored", t);
  auto* dst = static_cast<uint8_t*>(base);
  for (int r = 0; r < tile.rows; ++r) std::memcpy(dst + r * stride, tile.data[r], tile.colsb);
}

void dpbusd(int c, int a, int b) {
  if (c == a || c == b || a == b) fault("tdpbusd", "operands must be distinct tiles", c);
  Tile& dst = configured_tile("tdpbusd", c);
  const Tile& ta = configured_tile("tdpbusd", a);
  const Tile& tb = configured_tile("tdpbusd", b);
  if (dst.colsb % 4 != 0 || ta.colsb % 4 != 0) fault("tdpbusd", "colsb not a multiple of 4", c);
  if (dst.rows != ta.rows) fault("tdpbusd", "dst.rows != a.rows", c);
  if (ta.colsb / 4 != tb.rows) fault("tdpbusd", "a.colsb / 4 != b.rows", c);
  if (dst.colsb != tb.colsb) fault("tdpbusd", "dst.colsb != b.colsb", c);
  for (int m = 0; m < dst.rows; ++m) {
    for (int n = 0; n < dst.colsb / 4; ++n) {
      uint32_t acc;
      std::memcpy(&acc, dst.data[m] + 4 * n, 4);
      for (int k = 0; k < ta.colsb / 4; ++k) {
        for (int i = 0; i < 4; ++i) {
          const int32_t x = ta.data[m][4 * k + i];                       // zero-extended u8
          const int32_t y = static_cast<int8_t>(tb.data[k][4 * n + i]);  // sign-extended s8
          acc += static_cast<uint32_t>(x * y);  // |x * y| <= 32640: no overflow before the wrap
        }
      }
      std::memcpy(dst.data[m] + 4 * n, &acc, 4);
    }
    // Bytes of a row beyond dst.colsb are zeroed by the instruction.
    std::memset(dst.data[m] + dst.colsb, 0, static_cast<std::size_t>(kMaxColsb - dst.colsb));
  }
  for (int m = dst.rows; m < kMaxRows; ++m) std::memset(dst.data[m], 0, kMaxColsb);
}

}  // namespace amx_emu
}  // namespace
}  // namespace sparq::detail

#define SPARQ_TILE_CONFIG(cfg) amx_emu::loadconfig(cfg)
#define SPARQ_TILE_ZERO(t) amx_emu::zero(t)
#define SPARQ_TILE_LOAD(t, ptr, stride) amx_emu::load(t, ptr, stride)
#define SPARQ_TILE_STORE(t, ptr, stride) amx_emu::store(t, ptr, stride)
#define SPARQ_TILE_DPBUSD(c, a, b) amx_emu::dpbusd(c, a, b)
#define SPARQ_AMX_UKERNEL_NAME gemm_u8s8s32_ukernel_32x64c4__amxemu

#include "kernels/amx/gemm_u8s8s32_ukernel_32x64c4__amx.inc"
