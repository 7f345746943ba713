// The GEMM driver both weight kinds plug into: the dense driver (gemm.cpp)
// and the 2:4 sparse driver (sparse_gemm.cpp) share the argument checks,
// the activation packing, the block / panel / row-tile loop nest, the K
// chunking and output stage of a tile, and the thread split; each supplies
// only its per-tile microkernel call (and the sparse expand path its
// per-panel expansion). Both drivers must apply the output stages with the
// very same code, or the sparse GEMM stops being bit-identical to the dense
// one on the same pruned weights (tests/kernels/sparse_gemm_test.cpp checks
// that it is). Internal: included by src/gemm/*.cpp only.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/gemm_kernels.hpp"
#include "quant/dynamic_qparams.hpp"
#include "sparq/error.hpp"
#include "sparq/gemm/gemm.hpp"
#include "sparq/quant/quantize.hpp"
#include "sparq/quant/requantize.hpp"
#include "sparq/threads.hpp"

#if defined(SPARQ_WITH_OPENMP)
#include <omp.h>
#endif

namespace sparq::detail {

enum class OutKind { s32, u8, s8, f32 };

/// The FP32 rows of linear_dynamic and their qparams. Per tensor, `scale`
/// and `zero_points` (m values) are given; per row, PackedActivations fills
/// both for each row as it packs it (one range pass, then quantize), before
/// any output stage reads them.
struct DynamicRows {
  const float* x = nullptr;
  int64_t ldx = 0;
  bool per_row = false;
  float* scale = nullptr;         // m values (the output stage's row scales)
  int32_t* zero_point = nullptr;  // m values
  const char* who = nullptr;
};

struct ActSpec {
  const uint8_t* data = nullptr;  // s8 data passed as bytes
  int64_t m = 0;
  int64_t k = 0;
  int64_t ld = 0;
  bool is_signed = false;
  const int32_t* zero_points = nullptr;  // m values, in the activations' own domain
  // Dynamic quantization fused into packing (linear_dynamic): when `dynamic`
  // is set, data is null and the rows are read as floats from it, quantized
  // to u8 tile by tile by the thread that packs the tile, so the quantized
  // copy of A never exists outside L1.
  const DynamicRows* dynamic = nullptr;
};

struct OutSpec {
  OutKind kind = OutKind::s32;
  void* c = nullptr;
  int64_t ldc = 0;
  // requantize (n values each; bias may be null)
  const int32_t* multiplier = nullptr;
  const int32_t* shift = nullptr;
  const int32_t* bias = nullptr;
  int32_t zero_point = 0;
  int32_t qmin = 0;
  int32_t qmax = 0;
  // requantize: the residual input (null: none), n multipliers and shifts
  const uint8_t* residual = nullptr;  // s8 data passed as bytes
  int64_t residual_ld = 0;
  bool residual_signed = false;
  int32_t residual_zero_point = 0;
  const int32_t* residual_multiplier = nullptr;
  const int32_t* residual_shift = nullptr;
  // dequantize
  const float* row_scale = nullptr;  // m values
  const float* col_scale = nullptr;  // n values
  const float* fbias = nullptr;      // n values or null
  bool relu = false;
};

// Packed-A rows per block: about 384 KiB, half of a 1 MiB L2, leaving room
// for the weight panel the block is multiplied with.
inline constexpr int64_t kABlockBytes = 384 * 1024;

inline int resolve_threads(int requested) {
  if (requested < 0) fail("GemmOptions::threads ({}) must be >= 0 (0: set_num_threads)", requested);
#if defined(SPARQ_WITH_OPENMP)
  const int t = requested > 0 ? requested : num_threads();
  return std::max(1, t);
#else
  (void)requested;
  return 1;
#endif
}

/// Threads for a call of `macs` multiply-adds that streams `weight_bytes` of
/// packed weights, split into `units` (panel, row tile) pairs. Waking a team
/// costs microseconds, so a thread is worth it only for at least ~4 M
/// multiply-adds (~10 us of compute) or, for the bandwidth-bound small-M
/// shapes, at least 128 KiB of weights to stream (~10 us of one core's read
/// bandwidth). The second rule is what lets M = 1 use every core: its
/// multiply-adds alone (16 M at N = K = 4096) would allow only 4 threads,
/// while reading its 16 MiB of weights scales with the cores' bandwidth.
/// Safe for determinism: results do not depend on the count.
inline int threads_for(int requested, int64_t macs, int64_t weight_bytes, int64_t units) {
  const int64_t worth = std::max(macs >> 22, weight_bytes >> 17);
  return static_cast<int>(
      std::clamp<int64_t>(std::min(worth, units), 1, resolve_threads(requested)));
}

inline int32_t saturate32(int64_t v) {
  return static_cast<int32_t>(std::clamp<int64_t>(v, std::numeric_limits<int32_t>::min(),
                                                  std::numeric_limits<int32_t>::max()));
}

// Splits [0, count) into `parts` near-equal ranges; returns range `index`.
inline std::pair<int64_t, int64_t> share(int64_t count, int parts, int index) {
  return {count * index / parts, count * (index + 1) / parts};
}

/// The output stages on one mr x nr tile of exact accumulators (int32, or
/// int64 for K beyond kMaxKChunk), with the int32-overflow record of the
/// int32 output.
class OutputStage {
 public:
  OutputStage(const OutSpec& out, const GemmKernels& kern) : out_(out), kern_(kern) {}

  const OutSpec& spec() const noexcept { return out_; }

  // acc: int32 sums (compensated); bias: the int32 bias, or null when it is
  // already applied; add_residual: false when the residual is too.
  void stage32(const int32_t* acc, int64_t ld, int64_t i0, int64_t j0, int mr, int nr,
               const int32_t* bias, bool add_residual = true) noexcept {
    if (out_.kind == OutKind::f32) {
      GemmDequantizeParams d;
      d.acc = acc;
      d.ld_acc = ld;
      d.rows = mr;
      d.cols = nr;
      d.row_scale = out_.row_scale + i0;
      d.col_scale = out_.col_scale + j0;
      d.bias = out_.fbias != nullptr ? out_.fbias + j0 : nullptr;
      d.relu = out_.relu;
      d.out = static_cast<float*>(out_.c) + i0 * out_.ldc + j0;
      d.ld_out = out_.ldc;
      kern_.dequantize(d);
      return;
    }
    GemmRequantizeParams r;
    r.acc = acc;
    r.ld_acc = ld;
    r.rows = mr;
    r.cols = nr;
    r.multiplier = out_.multiplier + j0;
    r.shift = out_.shift + j0;
    r.bias = bias != nullptr ? bias + j0 : nullptr;
    r.zero_point = out_.zero_point;
    r.qmin = out_.qmin;
    r.qmax = out_.qmax;
    r.ld_out = out_.ldc;
    if (add_residual && out_.residual != nullptr) {
      // Added by the stage kernel before its one rounding (one saturation).
      r.residual = out_.residual + i0 * out_.residual_ld + j0;
      r.residual_ld = out_.residual_ld;
      r.residual_signed = out_.residual_signed;
      r.residual_zero_point = out_.residual_zero_point;
      r.residual_multiplier = out_.residual_multiplier + j0;
      r.residual_shift = out_.residual_shift + j0;
    }
    if (out_.kind == OutKind::u8) {
      r.out = static_cast<uint8_t*>(out_.c) + i0 * out_.ldc + j0;
      kern_.requantize_u8(r);
    } else {
      r.out = static_cast<int8_t*>(out_.c) + i0 * out_.ldc + j0;
      kern_.requantize_s8(r);
    }
  }

  // K beyond the int32 bound: the driver adds exact int32 partial sums per
  // K chunk (uncompensated) into int64 ...
  static void add_chunk(int64_t* wide, const int32_t* part, int64_t ld, int mr, int nr) noexcept {
    for (int i = 0; i < mr; ++i) {
      for (int j = 0; j < nr; ++j) wide[i * ld + j] += part[i * ld + j];
    }
  }

  // ... then compensates once (zp_eff: mr effective activation zero points,
  // col_sums: the tile's nr column sums) and calls stage64.
  static void compensate(int64_t* wide, int64_t ld, const int32_t* zp_eff, const int32_t* col_sums,
                         int mr, int nr) noexcept {
    for (int i = 0; i < mr; ++i) {
      for (int j = 0; j < nr; ++j) wide[i * ld + j] -= int64_t{zp_eff[i]} * col_sums[j];
    }
  }

  // acc: exact int64 sums; scratch: mr x ld int32 for the requantizing stage.
  void stage64(const int64_t* acc, int64_t ld, int32_t* scratch, int64_t i0, int64_t j0, int mr,
               int nr) noexcept {
    switch (out_.kind) {
      case OutKind::s32: {
        auto* c = static_cast<int32_t*>(out_.c);
        for (int i = 0; i < mr; ++i) {
          for (int j = 0; j < nr; ++j) {
            const int64_t v = acc[i * ld + j];
            if (v != saturate32(v) && !overflow_.exchange(true)) {
              overflow_row_ = i0 + i;
              overflow_col_ = j0 + j;
              overflow_value_ = v;
            }
            c[(i0 + i) * out_.ldc + j0 + j] = saturate32(v);
          }
        }
        return;
      }
      case OutKind::f32: {
        auto* c = static_cast<float*>(out_.c);
        for (int i = 0; i < mr; ++i) {
          for (int j = 0; j < nr; ++j) {
            const float scale = out_.row_scale[i0 + i] * out_.col_scale[j0 + j];
            const float bias = out_.fbias != nullptr ? out_.fbias[j0 + j] : 0.0f;
            float y = std::fma(static_cast<float>(acc[i * ld + j]), scale, bias);
            if (out_.relu) y = y > 0.0f ? y : 0.0f;
            c[(i0 + i) * out_.ldc + j0 + j] = y;
          }
        }
        return;
      }
      default: {
        // saturate_int32(acc + bias + residual), then the same requantizing
        // stage with the bias and the residual already applied.
        for (int i = 0; i < mr; ++i) {
          for (int j = 0; j < nr; ++j) {
            const int64_t b = out_.bias != nullptr ? out_.bias[j0 + j] : 0;
            const int64_t r = out_.residual != nullptr ? residual_term(i0 + i, j0 + j) : 0;
            scratch[i * ld + j] = saturate32(acc[i * ld + j] + b + r);
          }
        }
        stage32(scratch, ld, i0, j0, mr, nr, nullptr, false);
        return;
      }
    }
  }

  /// Throws when an int32 output did not fit (after the whole call, so the
  /// threads are done).
  void fail_if_overflowed(const char* who, int64_t k) const {
    if (!overflow_.load()) return;
    fail(
        "{}: the int32 output C[{}][{}] = {} does not fit in int32 (K = {}); use the requantizing "
        "or dequantizing output stage, which take the exact int64 sum",
        who, overflow_row_, overflow_col_, overflow_value_, k);
  }

 private:
  // The residual value of output (i, j) in accumulator units.
  int32_t residual_term(int64_t i, int64_t j) const noexcept {
    const uint8_t byte = out_.residual[i * out_.residual_ld + j];
    const int32_t r = out_.residual_signed ? int32_t{static_cast<int8_t>(byte)} : int32_t{byte};
    return multiply_by_quantized_multiplier(
        r - out_.residual_zero_point,
        QuantizedMultiplier{out_.residual_multiplier[j], out_.residual_shift[j]});
  }

  const OutSpec out_;
  const GemmKernels& kern_;
  std::atomic<bool> overflow_{false};
  int64_t overflow_row_ = 0;
  int64_t overflow_col_ = 0;
  int64_t overflow_value_ = 0;
};

/// This thread's tile scratch for a driver's run(): an mr x nr int32 tile
/// and, when K is summed in chunks, its int64 sums. Kept across calls, so a
/// steady stream of GEMMs does not allocate (nn::Workspace's serving path).
struct TileScratch {
  int32_t* tile;
  int64_t* wide;  ///< null-safe to pass when !wide_sums (then unused)
};
inline TileScratch tile_scratch(int mr, int nr, bool wide_sums) {
  thread_local std::vector<int32_t> tile;
  thread_local std::vector<int64_t> wide;
  const auto n = static_cast<std::size_t>(mr) * static_cast<std::size_t>(nr);
  if (tile.size() < n) tile.resize(n);
  if (wide_sums && wide.size() < n) wide.resize(n);
  return {tile.data(), wide.data()};
}

/// The activations of one call packed for a microkernel: row tiles of `mr`
/// rows, K padded to `kp` in groups of `kr`, `elem` bytes per element (the
/// dense AVX2 kernel reads int16), and per row the zero point in packed-A
/// units. Both drivers use it: the buffers are the calling thread's, reused
/// across calls (packing writes every byte, padding included, so nothing is
/// zeroed per call), and the thread team reads them.
class PackedActivations {
 public:
  PackedActivations(const ActSpec& a, const GemmKernels& dense, GemmPackAFn pack, int mr, int kr,
                    int64_t kp, int64_t elem)
      : a_(a), pack_(pack), mr_(mr), kr_(kr), kp_(kp), elem_(elem) {
    thread_local std::vector<uint8_t> buffer;
    thread_local std::vector<int32_t> zp;
    const auto bytes = static_cast<std::size_t>(a.m * kp * elem);
    if (buffer.size() < bytes) buffer.resize(bytes);
    zp.resize(static_cast<std::size_t>(a.m));
    data_ = buffer.data();
    zp_eff_ = zp.data();
    shift_ = a.is_signed ? dense.a_shift_s8 : dense.a_shift_u8;
    // The kernels' compensation subtracts zp_eff * column sum; an s8 shift
    // other than 128 (0: the kernel takes s8 as it is) leaves zp unchanged.
    zp_shift_ = a.is_signed ? (dense.a_shift_s8 == 128 ? 128 : 0) : dense.a_shift_u8;
    // Per-row dynamic qparams are not known yet: pack_tile sets them.
    if (a.dynamic == nullptr || !a.dynamic->per_row) {
      for (int64_t i = 0; i < a.m; ++i) zp_eff_[i] = a.zero_points[i] + zp_shift_;
    }
    tiles_ = (a.m + mr - 1) / mr;
  }

  /// The first row that held a NaN or an infinity (dynamic rows), or -1.
  /// Read after packing, when the threads are past their barrier.
  int64_t bad_row() const noexcept { return bad_row_.load(std::memory_order_relaxed); }

  int mr() const noexcept { return mr_; }
  int64_t tiles() const noexcept { return tiles_; }
  int rows(int64_t i0) const noexcept {
    return static_cast<int>(std::min<int64_t>(mr_, a_.m - i0));
  }
  /// Row tile starting at row i0, from K offset k0 (a multiple of kr).
  const uint8_t* tile(int64_t i0, int64_t k0) const noexcept {
    return data_ + (i0 * kp_ + k0 * rows(i0)) * elem_;
  }
  const int32_t* zp_eff(int64_t i0) const noexcept { return zp_eff_ + i0; }
  int64_t tile_bytes() const noexcept { return mr_ * kp_ * elem_; }

  void pack_tile(int64_t t) const noexcept {
    const int64_t i0 = t * mr_;
    GemmPackAParams p;
    if (a_.dynamic != nullptr) {
      p.a = quantize_rows(i0, rows(i0));
      if (p.a == nullptr) return;  // a bad row: the call throws after the threads
      p.lda = a_.k;
    } else {
      p.a = a_.data + i0 * a_.ld;
      p.lda = a_.ld;
    }
    p.k = a_.k;
    p.kp = kp_;
    p.mr = rows(i0);
    p.kr = kr_;
    p.shift = shift_;
    p.dst = data_ + i0 * kp_ * elem_;
    pack_(p);
  }

 private:
  // Quantizes the `rows` dynamic rows from i0 into this thread's scratch
  // (rows x k u8, in L1 for the pack that follows) with the one definition
  // of dynamic quantization (dynamic_u8_qparams, quantize_tensor): the same
  // u8 values as quantizing the whole matrix first. Returns null after
  // recording the row when one holds a NaN or an infinity.
  const uint8_t* quantize_rows(int64_t i0, int rows) const noexcept {
    const DynamicRows& d = *a_.dynamic;
    thread_local std::vector<uint8_t> scratch;
    const auto bytes = static_cast<std::size_t>(rows * a_.k);
    if (scratch.size() < bytes) scratch.resize(bytes);
    for (int64_t i = i0; i < i0 + rows; ++i) {
      const float* x = d.x + i * d.ldx;
      if (d.per_row) {
        QParams qp;
        try {
          qp = dynamic_u8_qparams(x, 1, a_.k, d.ldx, d.who);
        } catch (const Error&) {
          // Not thrown across the thread team: the lowest bad row is kept,
          // the caller throws once the threads are done.
          int64_t seen = bad_row_.load(std::memory_order_relaxed);
          while ((seen < 0 || i < seen) &&
                 !bad_row_.compare_exchange_weak(seen, i, std::memory_order_relaxed)) {
          }
          return nullptr;
        }
        d.scale[i] = qp.scale;
        d.zero_point[i] = qp.zero_point;
        zp_eff_[i] = qp.zero_point + zp_shift_;
      }
      quantize_tensor(DType::u8, x, scratch.data() + (i - i0) * a_.k,
                      static_cast<std::size_t>(a_.k), 1.0f / d.scale[i], d.zero_point[i], 0, 255);
    }
    return scratch.data();
  }

  const ActSpec& a_;
  GemmPackAFn pack_;
  int mr_;
  int kr_;
  int64_t kp_;
  int64_t elem_;
  int32_t shift_ = 0;
  int32_t zp_shift_ = 0;
  mutable std::atomic<int64_t> bad_row_{-1};
  int64_t tiles_ = 0;
  uint8_t* data_ = nullptr;
  int32_t* zp_eff_ = nullptr;
};

/// A share of the next weight panel for a tile's microkernel to prefetch
/// into L2 (null: none).
struct PanelPrefetch {
  const int8_t* lines_at = nullptr;
  int64_t lines = 0;
};

/// Share `index` of `count` of the 64-byte lines of the panel of `bytes` at
/// `panel`: the row tiles of a block split the prefetch of the next panel,
/// so its first tile reads L2.
inline PanelPrefetch prefetch_share(const int8_t* panel, int64_t bytes, int64_t index,
                                    int64_t count) noexcept {
  const int64_t total = bytes / 64;
  const int64_t l0 = total * index / count;
  return {panel + l0 * 64, total * (index + 1) / count - l0};
}

/// The loop nest both drivers run over panels [p0, p1) x row tiles [t0, t1)
/// (their file comments say why this order): blocks of `block` row tiles;
/// per block and panel `begin_panel(p)`, then `tile(t, p, index, count)` for
/// each row tile t of the block (index of count in it).
template <class BeginPanel, class Tile>
void for_each_tile(int64_t p0, int64_t p1, int64_t t0, int64_t t1, int64_t block,
                   BeginPanel&& begin_panel, Tile&& tile) {
  for (int64_t tb = t0; tb < t1; tb += block) {
    const int64_t te = std::min(t1, tb + block);
    for (int64_t p = p0; p < p1; ++p) {
      begin_panel(p);
      for (int64_t t = tb; t < te; ++t) tile(t, p, t - tb, te - tb);
    }
  }
}

/// One dense microkernel call: a row tile of packed A (mr rows) times kc
/// inputs of a dense panel w (the dense driver's packed panel, or the sparse
/// expand path's expanded one) into c; compensated when col_sums is set, and
/// prefetching `next` into L2 as it goes.
inline void dense_ukernel(const GemmKernels& kern, const uint8_t* a, const int8_t* w, int64_t kc,
                          int mr, int nr, int32_t* c, int64_t ldc, const int32_t* zp_eff,
                          const int32_t* col_sums, PanelPrefetch next) noexcept {
  GemmUkernelParams u;
  u.a = a;
  u.w = w;
  u.kp = kc;
  u.mr = mr;
  u.nr = nr;
  u.c = c;
  u.ldc = ldc;
  u.a_zero_point = zp_eff;
  u.col_sums = col_sums;
  u.w_prefetch = next.lines_at;
  u.prefetch_lines = next.lines;
  kern.ukernel(u);
}

/// One output tile (rows [i0, i0 + mr) x channels [j0, j0 + nr), accumulated
/// mr x panel_nr) through the stage, with the K chunking beyond the int32
/// bound. `kernel(k0, kc, compensate, c, ldc)` is the driver's microkernel
/// call: the int32 sums of K range [k0, k0 + kc) into c, minus zp_eff x the
/// column sums when `compensate`. Up to kMaxKChunk: one compensated call,
/// into C itself for the int32 output. Beyond: exact int32 partial sums per
/// chunk (no compensation), combined in int64, compensated once.
template <class Kernel>
void stage_tile(OutputStage& stage, const TileScratch& scratch, int64_t i0, int64_t j0, int mr,
                int nr, int panel_nr, int64_t kp, const int32_t* zp_eff, const int32_t* col_sums,
                Kernel&& kernel) noexcept {
  const OutSpec& out = stage.spec();
  if (kp <= kMaxKChunk) {
    if (out.kind == OutKind::s32) {
      kernel(0, kp, true, static_cast<int32_t*>(out.c) + i0 * out.ldc + j0, out.ldc);
      return;
    }
    kernel(0, kp, true, scratch.tile, panel_nr);
    stage.stage32(scratch.tile, panel_nr, i0, j0, mr, nr, out.bias);
    return;
  }
  std::fill(scratch.wide, scratch.wide + mr * panel_nr, int64_t{0});
  for (int64_t k0 = 0; k0 < kp; k0 += kMaxKChunk) {
    kernel(k0, std::min(kMaxKChunk, kp - k0), false, scratch.tile, panel_nr);
    OutputStage::add_chunk(scratch.wide, scratch.tile, panel_nr, mr, nr);
  }
  OutputStage::compensate(scratch.wide, panel_nr, zp_eff, col_sums + j0, mr, nr);
  stage.stage64(scratch.wide, panel_nr, scratch.tile, i0, j0, mr, nr);
}

/// How `threads` threads share a grid of `panels` x `tiles` output blocks:
/// `row_groups` x `panel_groups` rectangles, one per thread.
struct ThreadGrid {
  int row_groups = 1;
  int panel_groups = 1;
};

/// Picks the grid that minimises the largest rectangle (the slowest
/// thread's work, in panel x tile units); among equals, the one with the
/// fewest row groups, since every row group reads all of its panels' weights
/// again (with one row group each weight byte leaves memory once). Small M
/// (tiles = 1) thus splits the weights across all threads, large M splits
/// both dimensions when the panels alone do not divide evenly (20 panels and
/// T row tiles on 16 threads: 4 x 4 rectangles of 5 panels x T/4 tiles, the
/// slowest thread doing 1.25 T units, instead of 2 T when the 16 threads
/// split the 20 panels alone).
inline ThreadGrid thread_grid(int64_t panels, int64_t tiles, int threads) {
  ThreadGrid best;
  int64_t best_work = std::numeric_limits<int64_t>::max();
  for (int rg = 1; rg <= threads; ++rg) {
    if (threads % rg != 0) continue;
    const int pg = threads / rg;
    if (rg > tiles || pg > panels) continue;
    const int64_t work = ((panels + pg - 1) / pg) * ((tiles + rg - 1) / rg);
    if (work < best_work) {
      best_work = work;
      best = {rg, pg};
    }
  }
  if (best_work == std::numeric_limits<int64_t>::max()) {
    // No exact factorisation fits (e.g. 3 threads, 2 panels, 1 tile): one
    // dimension only, with some threads idle.
    best = panels >= tiles ? ThreadGrid{1, static_cast<int>(std::min<int64_t>(threads, panels))}
                           : ThreadGrid{static_cast<int>(std::min<int64_t>(threads, tiles)), 1};
  }
  return best;
}

/// Packs A (driver.pack_tile(t) for every row tile) and then runs
/// driver.run(p0, p1, t0, t1) on `threads` threads, each on its own
/// rectangle of the thread_grid. Every output element is computed by the
/// same instructions in the same order whatever the thread count (K is
/// never split), so results are identical.
template <class Driver>
void run_on_threads(Driver& driver, int64_t tiles, int64_t panels, int threads) {
  auto work = [&](int tid, int nt) {
    const ThreadGrid grid = thread_grid(panels, tiles, nt);
    if (tid >= grid.row_groups * grid.panel_groups) return;
    const auto [p0, p1] = share(panels, grid.panel_groups, tid % grid.panel_groups);
    const auto [t0, t1] = share(tiles, grid.row_groups, tid / grid.panel_groups);
    driver.run(p0, p1, t0, t1);
  };
#if defined(SPARQ_WITH_OPENMP)
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    {
#pragma omp for schedule(static)
      for (int64_t t = 0; t < tiles; ++t) driver.pack_tile(t);
      // The team may be smaller than asked for (OMP_DYNAMIC, nested
      // regions): the grid is made for the threads that actually came.
      work(omp_get_thread_num(), omp_get_num_threads());
    }
    return;
  }
#endif
  (void)threads;
  for (int64_t t = 0; t < tiles; ++t) driver.pack_tile(t);
  work(0, 1);
}

// --- argument checks (messages name the argument, its value and what was
// expected) --------------------------------------------------------------

/// Validates `a` against weights of k inputs (`empty`: the weights object
/// holds nothing; `pack_fn`: the function that makes weights) and fills
/// `zps` with a's zero point per row.
template <class T>
ActSpec check_activations(const Activations<T>& a, bool empty, int64_t k, const char* who,
                          const char* pack_fn, std::vector<int32_t>& zps) {
  if (empty) fail("{}: weights are empty; expected the result of {}", who, pack_fn);
  if (a.m < 0) fail("{}: a.m ({}) must be >= 0", who, a.m);
  if (a.k != k) fail("{}: a.k ({}) must equal the weights' k ({})", who, a.k, k);
  const int64_t ld = a.ld == 0 ? a.k : a.ld;
  if (ld < a.k) fail("{}: a.ld ({}) must be >= a.k ({}) or 0", who, a.ld, a.k);
  if (a.m > 0 && a.data == nullptr) fail("{}: a.data is null with a.m = {}", who, a.m);
  constexpr bool is_signed = std::is_same_v<T, int8_t>;
  const int32_t lo = is_signed ? -128 : 0;
  const int32_t hi = is_signed ? 127 : 255;
  if (a.zero_point < lo || a.zero_point > hi) {
    fail("{}: a.zero_point ({}) must be in [{}, {}] for {} activations", who, a.zero_point, lo, hi,
         is_signed ? "s8" : "u8");
  }
  zps.assign(static_cast<std::size_t>(a.m), a.zero_point);
  ActSpec s;
  s.data = reinterpret_cast<const uint8_t*>(a.data);
  s.m = a.m;
  s.k = a.k;
  s.ld = ld;
  s.is_signed = is_signed;
  s.zero_points = zps.data();
  return s;
}

/// Returns the effective ldc (0 means n).
inline int64_t check_output(const void* c, int64_t m, int64_t ldc, int64_t n, const char* who) {
  if (ldc == 0) ldc = n;
  if (ldc < n) fail("{}: ldc ({}) must be >= n ({}) or 0", who, ldc, n);
  if (m > 0 && c == nullptr) fail("{}: the output pointer is null", who);
  return ldc;
}

/// The sparse GEMM's loop nest (sparse_gemm.cpp) on checked arguments;
/// returns the path that ran.
SparsePath run_sparse_gemm(const ActSpec& a, const PackedSparseWeights& weights, const OutSpec& out,
                           const SparseGemmOptions& options, const char* who);

/// Per-channel multipliers and shifts (and the residual's) that `out`
/// points into.
struct RequantArrays {
  std::vector<int32_t> multiplier, shift;
  std::vector<int32_t> residual_multiplier, residual_shift;
};

/// Fills `mult` / `shift` with n values from `given` (1 or n), validated.
inline void expand_multipliers(const std::vector<QuantizedMultiplier>& given, std::size_t n,
                               const char* who, const char* name, std::vector<int32_t>& mult,
                               std::vector<int32_t>& shift) {
  if (!(given.size() == 1 || given.size() == n)) {
    fail("{}: {} has {} values; expected 1 or n ({})", who, name, given.size(), n);
  }
  mult.resize(n);
  shift.resize(n);
  for (std::size_t j = 0; j < n; ++j) {
    const QuantizedMultiplier& m = given.size() == 1 ? given[0] : given[j];
    if (m.multiplier < 0 || m.shift < -31 || m.shift > 30) {
      fail("{}: {}[{}] = ({}, shift {}) must have multiplier >= 0 and shift in [-31, 30]", who,
           name, given.size() == 1 ? 0 : j, m.multiplier, m.shift);
    }
    mult[j] = m.multiplier;
    shift[j] = m.shift;
  }
}

/// Validates the requantizing stage for n channels and fills `out`'s
/// requantize fields, pointing into `arr` (callers keep it thread_local, so
/// a steady stream of calls does not allocate).
template <class Out>
void check_requantize(const RequantizeStage& s, int64_t n_channels, const char* who, OutSpec& out,
                      RequantArrays& arr) {
  const auto n = static_cast<std::size_t>(n_channels);
  if (!(s.bias.empty() || s.bias.size() == n)) {
    fail("{}: stage.bias has {} values; expected 0 or n ({})", who, s.bias.size(), n);
  }
  constexpr int32_t lo = std::is_same_v<Out, int8_t> ? -128 : 0;
  constexpr int32_t hi = std::is_same_v<Out, int8_t> ? 127 : 255;
  if (s.output_zero_point < lo || s.output_zero_point > hi) {
    fail("{}: stage.output_zero_point ({}) must be in [{}, {}]", who, s.output_zero_point, lo, hi);
  }
  if (s.clamp_min < lo || s.clamp_max > hi || s.clamp_min > s.clamp_max) {
    fail("{}: stage clamp [{}, {}] must satisfy {} <= clamp_min <= clamp_max <= {}", who,
         s.clamp_min, s.clamp_max, lo, hi);
  }
  expand_multipliers(s.multipliers, n, who, "stage.multipliers", arr.multiplier, arr.shift);
  const ResidualInput& res = s.residual;
  if (res.data != nullptr) {
    const int32_t rlo = res.is_signed ? -128 : 0;
    const int32_t rhi = res.is_signed ? 127 : 255;
    if (res.zero_point < rlo || res.zero_point > rhi) {
      fail("{}: stage.residual.zero_point ({}) must be in [{}, {}] for {} residuals", who,
           res.zero_point, rlo, rhi, res.is_signed ? "s8" : "u8");
    }
    const int64_t ld = res.ld == 0 ? n_channels : res.ld;
    if (ld < n_channels) {
      fail("{}: stage.residual.ld ({}) must be >= n ({}) or 0", who, res.ld, n_channels);
    }
    expand_multipliers(res.multipliers, n, who, "stage.residual.multipliers",
                       arr.residual_multiplier, arr.residual_shift);
    out.residual = static_cast<const uint8_t*>(res.data);
    out.residual_ld = ld;
    out.residual_signed = res.is_signed;
    out.residual_zero_point = res.zero_point;
    out.residual_multiplier = arr.residual_multiplier.data();
    out.residual_shift = arr.residual_shift.data();
  } else if (!res.multipliers.empty()) {
    fail("{}: stage.residual.multipliers are set but stage.residual.data is null", who);
  }
  out.kind = std::is_same_v<Out, int8_t> ? OutKind::s8 : OutKind::u8;
  out.multiplier = arr.multiplier.data();
  out.shift = arr.shift.data();
  out.bias = s.bias.empty() ? nullptr : s.bias.data();
  out.zero_point = s.output_zero_point;
  out.qmin = s.clamp_min;
  out.qmax = s.clamp_max;
}

/// Validates the dequantizing stage for n channels and m rows; fills `out`
/// (row scales point into `row_scale`, column scales are the weights').
inline void check_dequantize(const DequantizeStage& s, int64_t m, int64_t n,
                             std::span<const float> col_scale, const char* who,
                             std::vector<float>& row_scale, OutSpec& out) {
  if (!std::isfinite(s.activation_scale)) {
    fail("{}: stage.activation_scale ({}) must be finite", who, s.activation_scale);
  }
  if (!(s.bias.empty() || static_cast<int64_t>(s.bias.size()) == n)) {
    fail("{}: stage.bias has {} values; expected 0 or n ({})", who, s.bias.size(), n);
  }
  if (s.activation_scales.empty()) {
    row_scale.assign(static_cast<std::size_t>(m), s.activation_scale);
  } else {
    if (static_cast<int64_t>(s.activation_scales.size()) != m) {
      fail("{}: stage.activation_scales has {} values; expected 0 or m ({})", who,
           s.activation_scales.size(), m);
    }
    for (std::size_t i = 0; i < s.activation_scales.size(); ++i) {
      if (!std::isfinite(s.activation_scales[i])) {
        fail("{}: stage.activation_scales[{}] ({}) must be finite", who, i, s.activation_scales[i]);
      }
    }
    row_scale = s.activation_scales;
  }
  out.kind = OutKind::f32;
  out.row_scale = row_scale.data();
  out.col_scale = col_scale.data();
  out.fbias = s.bias.empty() ? nullptr : s.bias.data();
  out.relu = s.relu;
}

}  // namespace sparq::detail
