// The 2:4 sparse GEMM driver: path choice, activation packing, the loop
// nests of the direct and expand paths, K chunks beyond the int32 bound. The
// argument checks, output stages and thread split are the dense driver's
// (gemm_driver.hpp), so the results are bit-identical to the dense gemm on
// the same pruned weights (see sparse_gemm.hpp).
//
// Loop nest (per thread, over its own panels or its own row tiles), like the
// dense driver's:
//   for each block of row tiles (expand path: whose packed A fits in about
//   half of L2; direct path: all tiles)
//     for each panel (NR channels x K)
//       expand path: expand the panel into a thread-local dense panel buffer
//         (256 KiB at K = 4096 with NR = 64: it stays in L2 while it is used)
//       for each row tile of the block: the direct sparse microkernel, or
//         the dense microkernel on the expanded buffer, over all of K; then
//         the output stage on the tile.
// The direct path streams the compressed weights from memory exactly once;
// each panel (160 KiB at K = 4096) then serves the other row tiles from L2.
// Above kMaxKChunk, the expand path expands each K chunk per row tile (rare
// shapes; the extra expansion is small next to the chunk's multiplies).
#include "sparq/gemm/sparse_gemm.hpp"

#include <algorithm>
#include <memory>
#include <type_traits>

#include "gemm/gemm_driver.hpp"
#include "kernels/sparse_gemm_kernels.hpp"
#include "sparq/detail/packed_sparse_weights_data.hpp"
#include "dispatch/cache_info.hpp"
#include "sparq/error.hpp"

namespace sparq {
namespace detail {
namespace {

bool expand_possible(const SparseGemmKernels& sp, const GemmKernels& dense) {
  return dense.nr == sp.nr && dense.kr == 4;
}

SparsePath choose(const PackedSparseWeightsData& w, int64_t m, SparsePath requested) {
  const SparseGemmKernels& sp = sparse_gemm_kernels(active_isa());
  if (!expand_possible(sp, gemm_kernels(active_isa()))) return SparsePath::direct;
  if (requested != SparsePath::automatic) return requested;
  // Direct pays off while reading the weights is the limit: few rows and
  // weights that come from beyond L2. Weights resident in L2 are read fast
  // enough that the expansion, spread over many rows, wins sooner.
  const int64_t bytes = w.n_panels * w.panel_bytes();
  const int64_t limit = bytes > l2_cache_bytes() ? sp.direct_max_m : sp.direct_max_m_in_l2;
  return m <= std::max<int64_t>(limit, 1) ? SparsePath::direct : SparsePath::expand;
}

class Driver {
 public:
  Driver(const ActSpec& a, const PackedSparseWeightsData& w, const OutSpec& out,
         const SparseGemmKernels& sp, const GemmKernels& dense, SparsePath path)
      : a_(a), w_(w), stage_(out, dense), sp_(sp), dense_(dense), path_(path) {
    const bool direct = path == SparsePath::direct;
    mr_ = direct ? sp.mr : dense.mr;
    // The direct kernels read bytes packed by the portable byte packer with
    // the table's a_kr; the expand path feeds the dense microkernel, so it
    // packs with the dense table's pack_a, whose elements may be wider
    // (AVX2: int16).
    kr_ = direct ? sp.a_kr : 4;
    kp_a_ = (w.kp + kr_ - 1) / kr_ * kr_;
    pack_a_ = direct ? gemm_pack_a__scalar : dense.pack_a;
    elem_ = direct ? 1 : dense.a_elem_bytes;
    tiles_ = (a.m + mr_ - 1) / mr_;
    // Reused across calls, like the dense driver's: packing writes every
    // byte (padding included), so the buffer needs no zeroing per call.
    thread_local std::vector<uint8_t> buffer;
    if (buffer.size() < static_cast<std::size_t>(a.m * kp_a_ * elem_)) {
      buffer.resize(static_cast<std::size_t>(a.m * kp_a_ * elem_));
    }
    a_packed_ = buffer.data();
    const int32_t shift = a.is_signed ? (dense.a_shift_s8 == 128 ? 128 : 0) : dense.a_shift_u8;
    zp_eff_.resize(static_cast<std::size_t>(a.m));
    for (int64_t i = 0; i < a.m; ++i)
      zp_eff_[static_cast<std::size_t>(i)] = a.zero_points[i] + shift;
  }

  int64_t tiles() const { return tiles_; }
  const OutputStage& stage() const { return stage_; }

  void pack_tile(int64_t t) noexcept {
    const int64_t i0 = t * mr_;
    GemmPackAParams p;
    p.a = a_.data + i0 * a_.ld;
    p.lda = a_.ld;
    p.k = a_.k;
    p.kp = kp_a_;
    p.mr = static_cast<int>(std::min<int64_t>(mr_, a_.m - i0));
    p.kr = kr_;
    p.shift = a_.is_signed ? dense_.a_shift_s8 : dense_.a_shift_u8;
    p.dst = a_packed_ + i0 * kp_a_ * elem_;
    pack_a_(p);
  }

  // Computes the output tiles of panels [p0, p1) x row tiles [t0, t1).
  void run(int64_t p0, int64_t p1, int64_t t0, int64_t t1) noexcept {
    const int nr = w_.nr;
    const TileScratch scratch = tile_scratch(mr_, nr, w_.kp > kMaxKChunk);
    thread_local AlignedBytes dense_panel;
    if (path_ == SparsePath::expand) {
      const auto need = static_cast<std::size_t>(std::min(w_.kp, kMaxKChunk) * nr);
      if (dense_panel.size() < need) dense_panel = AlignedBytes(need);
    }
    // Expand path: row blocks whose packed A stays in L2 next to the dense
    // panel, as the dense driver. The direct kernels read A one 64-input
    // window at a time (a few KiB per chunk of K, from L3 at a few GB/s), so
    // their rows are not blocked: every compressed weight byte then comes
    // from memory exactly once per call, whatever M.
    const int64_t block = path_ == SparsePath::direct
                              ? t1 - t0
                              : std::max<int64_t>(1, kABlockBytes / (mr_ * kp_a_ * elem_));
    for (int64_t tb = t0; tb < t1; tb += block) {
      const int64_t te = std::min(t1, tb + block);
      for (int64_t p = p0; p < p1; ++p) {
        if (path_ == SparsePath::expand && w_.kp <= kMaxKChunk) expand(p, 0, w_.kp, dense_panel);
        for (int64_t t = tb; t < te; ++t) {
          // Expand path: the row tiles share the prefetch of the next
          // compressed panel into L2, so its expansion reads L2 (the direct
          // kernel prefetches its own stream).
          const int8_t* next = nullptr;
          int64_t lines = 0;
          if (path_ == SparsePath::expand && p + 1 < p1) {
            const int64_t total = w_.panel_bytes() / 64;
            const int64_t l0 = total * (t - tb) / (te - tb);
            lines = total * (t - tb + 1) / (te - tb) - l0;
            next = w_.panel(p + 1) + l0 * 64;
          }
          tile(t, p, scratch.tile, scratch.wide, dense_panel, next, lines);
        }
      }
    }
  }

 private:
  void expand(int64_t p, int64_t k0, int64_t kc, AlignedBytes& buf) const noexcept {
    SpgemmExpandParams e;
    e.w = w_.panel(p) + (k0 / 8) * w_.nr * 5;
    e.steps = kc / 8;
    e.panel_nr = w_.nr;
    e.dst = buf.data();
    sp_.expand(e);
  }

  // One microkernel call over K range [k0, k0 + kc) of tile t x panel p.
  void kernel(int64_t t, int64_t p, int64_t k0, int64_t kc, bool compensate, int32_t* c,
              int64_t ldc, AlignedBytes& buf, const int8_t* prefetch,
              int64_t prefetch_lines) noexcept {
    const int64_t i0 = t * mr_;
    const int mr = static_cast<int>(std::min<int64_t>(mr_, a_.m - i0));
    const int nr = static_cast<int>(std::min<int64_t>(w_.nr, w_.n - p * w_.nr));
    const uint8_t* at = a_packed_ + (i0 * kp_a_ + k0 * mr) * elem_;
    const int32_t* sums = compensate ? w_.col_sums.data() + p * w_.nr : nullptr;
    const int32_t* zp = zp_eff_.data() + i0;
    if (path_ == SparsePath::direct) {
      SpgemmUkernelParams u;
      u.a = at;
      u.w = w_.panel(p) + (k0 / 8) * w_.nr * 5;
      u.steps = kc / 8;
      u.panel_nr = w_.nr;
      u.mr = mr;
      u.nr = nr;
      u.c = c;
      u.ldc = ldc;
      u.a_zero_point = zp;
      u.col_sums = sums;
      sp_.ukernel(u);
      return;
    }
    if (w_.kp > kMaxKChunk) expand(p, k0, kc, buf);
    GemmUkernelParams u;
    u.a = at;
    u.w = buf.data();
    u.kp = kc;
    u.mr = mr;
    u.nr = nr;
    u.c = c;
    u.ldc = ldc;
    u.a_zero_point = zp;
    u.col_sums = sums;
    u.w_prefetch = prefetch;
    u.prefetch_lines = prefetch_lines;
    dense_.ukernel(u);
  }

  void tile(int64_t t, int64_t p, int32_t* scratch, int64_t* wide, AlignedBytes& buf,
            const int8_t* prefetch, int64_t prefetch_lines) noexcept {
    const int64_t i0 = t * mr_;
    const int64_t j0 = p * w_.nr;
    const int mr = static_cast<int>(std::min<int64_t>(mr_, a_.m - i0));
    const int nr = static_cast<int>(std::min<int64_t>(w_.nr, w_.n - j0));
    const OutSpec& out = stage_.spec();
    if (w_.kp <= kMaxKChunk) {
      if (out.kind == OutKind::s32) {
        kernel(t, p, 0, w_.kp, true, static_cast<int32_t*>(out.c) + i0 * out.ldc + j0, out.ldc, buf,
               prefetch, prefetch_lines);
        return;
      }
      kernel(t, p, 0, w_.kp, true, scratch, w_.nr, buf, prefetch, prefetch_lines);
      stage_.stage32(scratch, w_.nr, i0, j0, mr, nr, out.bias);
      return;
    }
    // K beyond the int32 bound: exact int32 partial sums per chunk (no
    // compensation), combined in int64, as the dense driver.
    std::fill(wide, wide + mr * w_.nr, int64_t{0});
    for (int64_t k0 = 0; k0 < w_.kp; k0 += kMaxKChunk) {
      kernel(t, p, k0, std::min(kMaxKChunk, w_.kp - k0), false, scratch, w_.nr, buf, nullptr, 0);
      OutputStage::add_chunk(wide, scratch, w_.nr, mr, nr);
    }
    OutputStage::compensate(wide, w_.nr, zp_eff_.data() + i0, w_.col_sums.data() + j0, mr, nr);
    stage_.stage64(wide, w_.nr, scratch, i0, j0, mr, nr);
  }

  const ActSpec& a_;
  const PackedSparseWeightsData& w_;
  OutputStage stage_;
  const SparseGemmKernels& sp_;
  const GemmKernels& dense_;
  SparsePath path_;
  int mr_ = 0;
  int kr_ = 0;
  int64_t kp_a_ = 0;  // K of the packed activations: w.kp rounded up to kr_
  GemmPackAFn pack_a_ = nullptr;
  int64_t elem_ = 1;  // bytes per packed activation element
  int64_t tiles_ = 0;
  uint8_t* a_packed_ = nullptr;  // the calling thread's buffer (the team shares it)
  std::vector<int32_t> zp_eff_;  // per row, in packed-A units
};

SparsePath run(const ActSpec& a, const PackedSparseWeights& weights, const OutSpec& out,
               const SparseGemmOptions& options, const char* who) {
  const SparsePath path = choose(weights.data(), a.m, options.path);
  if (a.m == 0) return path;
  const Isa isa = active_isa();
  const SparseGemmKernels& sp = sparse_gemm_kernels(isa);
  const GemmKernels& dense = gemm_kernels(isa);
  std::shared_ptr<const PackedSparseWeightsData> repacked;
  const PackedSparseWeightsData* w = &weights.data();
  if (w->isa != sp.isa || w->nr != sp.nr) {
    repacked = repack_sparse_weights(*w, isa);  // the active ISA changed since packing
    w = repacked.get();
  }
  Driver driver(a, *w, out, sp, dense, path);
  const int64_t macs = a.m * w->n * w->kp / 2;  // the kept half
  run_on_threads(driver, driver.tiles(), w->n_panels,
                 threads_for(options.threads, macs, static_cast<int64_t>(weights.packed_bytes()),
                             w->n_panels * driver.tiles()));
  driver.stage().fail_if_overflowed(who, a.k);
  return path;
}

// The sparse GEMM's checks: the shared ones with this API's names, and the
// path option.
template <class T>
ActSpec check_activations(const Activations<T>& a, const PackedSparseWeights& w,
                          const SparseGemmOptions& o, const char* who, std::vector<int32_t>& zps) {
  const ActSpec s = detail::check_activations(a, w.empty(), w.k(), who, "pack_sparse_weights", zps);
  if (o.path != SparsePath::automatic && o.path != SparsePath::direct &&
      o.path != SparsePath::expand) {
    fail("{}: options.path ({}) must be automatic, direct or expand", who,
         static_cast<int>(o.path));
  }
  return s;
}

template <class T>
SparsePath gemm_s32(const Activations<T>& a, const PackedSparseWeights& w, int32_t* c, int64_t ldc,
                    const SparseGemmOptions& o) {
  const char* who = "gemm (sparse, int32 output)";
  thread_local std::vector<int32_t> zps;  // per-call scratch, kept: no allocation per call
  const ActSpec as = check_activations(a, w, o, who, zps);
  OutSpec out;
  out.kind = OutKind::s32;
  out.c = c;
  out.ldc = check_output(c, a.m, ldc, w.n(), who);
  return run(as, w, out, o, who);
}

template <class T, class Out>
SparsePath gemm_requant(const Activations<T>& a, const PackedSparseWeights& w,
                        const RequantizeStage& s, Out* c, int64_t ldc, const SparseGemmOptions& o) {
  const char* who = "gemm (sparse, requantized output)";
  thread_local std::vector<int32_t> zps;  // per-call scratch, kept: no allocation per call
  const ActSpec as = check_activations(a, w, o, who, zps);
  OutSpec out;
  thread_local RequantArrays arrays;  // kept across calls: no allocation per call
  check_requantize<Out>(s, w.n(), who, out, arrays);
  out.c = c;
  out.ldc = check_output(c, a.m, ldc, w.n(), who);
  return run(as, w, out, o, who);
}

template <class T>
SparsePath gemm_dequant(const Activations<T>& a, const PackedSparseWeights& w,
                        const DequantizeStage& s, float* c, int64_t ldc,
                        const SparseGemmOptions& o) {
  const char* who = "gemm (sparse, dequantized output)";
  thread_local std::vector<int32_t> zps;  // per-call scratch, kept: no allocation per call
  const ActSpec as = check_activations(a, w, o, who, zps);
  thread_local std::vector<float> row_scale;  // per-call scratch, kept
  OutSpec out;
  check_dequantize(s, a.m, w.n(), w.scales(), who, row_scale, out);
  out.c = c;
  out.ldc = check_output(c, a.m, ldc, w.n(), who);
  return run(as, w, out, o, who);
}

}  // namespace
}  // namespace detail

int64_t sparse_direct_max_rows(Isa isa) noexcept {
  return detail::sparse_gemm_kernels(isa).direct_max_m;
}

SparsePath choose_sparse_path(const PackedSparseWeights& weights, int64_t m,
                              const SparseGemmOptions& options) {
  if (weights.empty()) {
    detail::fail(
        "choose_sparse_path: weights are empty; expected the result of "
        "pack_sparse_weights");
  }
  return detail::choose(weights.data(), m, options.path);
}

SparsePath gemm(const ActivationsU8& a, const PackedSparseWeights& w, int32_t* c, int64_t ldc,
                const SparseGemmOptions& options) {
  return detail::gemm_s32(a, w, c, ldc, options);
}
SparsePath gemm(const ActivationsS8& a, const PackedSparseWeights& w, int32_t* c, int64_t ldc,
                const SparseGemmOptions& options) {
  return detail::gemm_s32(a, w, c, ldc, options);
}
SparsePath gemm(const ActivationsU8& a, const PackedSparseWeights& w, const RequantizeStage& stage,
                uint8_t* c, int64_t ldc, const SparseGemmOptions& options) {
  return detail::gemm_requant(a, w, stage, c, ldc, options);
}
SparsePath gemm(const ActivationsU8& a, const PackedSparseWeights& w, const RequantizeStage& stage,
                int8_t* c, int64_t ldc, const SparseGemmOptions& options) {
  return detail::gemm_requant(a, w, stage, c, ldc, options);
}
SparsePath gemm(const ActivationsS8& a, const PackedSparseWeights& w, const RequantizeStage& stage,
                uint8_t* c, int64_t ldc, const SparseGemmOptions& options) {
  return detail::gemm_requant(a, w, stage, c, ldc, options);
}
SparsePath gemm(const ActivationsS8& a, const PackedSparseWeights& w, const RequantizeStage& stage,
                int8_t* c, int64_t ldc, const SparseGemmOptions& options) {
  return detail::gemm_requant(a, w, stage, c, ldc, options);
}
SparsePath gemm(const ActivationsU8& a, const PackedSparseWeights& w, const DequantizeStage& stage,
                float* c, int64_t ldc, const SparseGemmOptions& options) {
  return detail::gemm_dequant(a, w, stage, c, ldc, options);
}
SparsePath gemm(const ActivationsS8& a, const PackedSparseWeights& w, const DequantizeStage& stage,
                float* c, int64_t ldc, const SparseGemmOptions& options) {
  return detail::gemm_dequant(a, w, stage, c, ldc, options);
}

}  // namespace sparq
