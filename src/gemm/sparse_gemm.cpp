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

#include "dispatch/cache_info.hpp"
#include "gemm/gemm_driver.hpp"
#include "kernels/sparse_gemm_kernels.hpp"
#include "sparq/detail/packed_sparse_weights_data.hpp"
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

// The sparse plug-in of the shared loop nest (gemm_driver.hpp): per tile
// the direct sparse microkernel on the compressed panel, or the dense
// microkernel on the panel expanded once per panel (expand path).
class Driver {
 public:
  Driver(const ActSpec& a, const PackedSparseWeightsData& w, const OutSpec& out,
         const SparseGemmKernels& sp, const GemmKernels& dense, SparsePath path)
      : w_(w),
        stage_(out, dense),
        sp_(sp),
        dense_(dense),
        path_(path),
        // The direct kernels read bytes packed by the portable byte packer
        // with the table's a_kr; the expand path feeds the dense
        // microkernel, so it packs with the dense table's pack_a, whose
        // elements may be wider (AVX2: int16).
        a_(a, dense, path == SparsePath::direct ? gemm_pack_a__scalar : dense.pack_a,
           path == SparsePath::direct ? sp.mr : dense.mr, kr(sp, path),
           (w.kp + kr(sp, path) - 1) / kr(sp, path) * kr(sp, path),
           path == SparsePath::direct ? 1 : dense.a_elem_bytes) {}

  int64_t tiles() const { return a_.tiles(); }
  const OutputStage& stage() const { return stage_; }
  void pack_tile(int64_t t) const noexcept { a_.pack_tile(t); }

  // Computes the output tiles of panels [p0, p1) x row tiles [t0, t1).
  void run(int64_t p0, int64_t p1, int64_t t0, int64_t t1) noexcept {
    const TileScratch scratch = tile_scratch(a_.mr(), w_.nr, w_.kp > kMaxKChunk);
    const bool expand_path = path_ == SparsePath::expand;
    thread_local AlignedBytes dense_panel;
    if (expand_path) {
      const auto need = static_cast<std::size_t>(std::min(w_.kp, kMaxKChunk) * w_.nr);
      if (dense_panel.size() < need) dense_panel = AlignedBytes(need);
    }
    // Expand path: row blocks whose packed A stays in L2 next to the dense
    // panel, as the dense driver. The direct kernels read A one 64-input
    // window at a time (a few KiB per chunk of K, from L3 at a few GB/s), so
    // their rows are not blocked: every compressed weight byte then comes
    // from memory exactly once per call, whatever M.
    const int64_t block =
        expand_path ? std::max<int64_t>(1, kABlockBytes / a_.tile_bytes()) : t1 - t0;
    for_each_tile(
        p0, p1, t0, t1, block,
        [&](int64_t p) {
          if (expand_path && w_.kp <= kMaxKChunk) expand(p, 0, w_.kp, dense_panel);
        },
        [&](int64_t t, int64_t p, int64_t index, int64_t count) {
          // Expand path: the row tiles share the prefetch of the next
          // compressed panel into L2, so its expansion reads L2 (the direct
          // kernel prefetches its own stream).
          PanelPrefetch next;
          if (expand_path && p + 1 < p1) {
            next = prefetch_share(w_.panel(p + 1), w_.panel_bytes(), index, count);
          }
          tile(t, p, scratch, dense_panel, next);
        });
  }

 private:
  static int kr(const SparseGemmKernels& sp, SparsePath path) {
    return path == SparsePath::direct ? sp.a_kr : 4;
  }

  void expand(int64_t p, int64_t k0, int64_t kc, AlignedBytes& buf) const noexcept {
    SpgemmExpandParams e;
    e.w = w_.panel(p) + (k0 / 8) * w_.nr * 5;
    e.steps = kc / 8;
    e.panel_nr = w_.nr;
    e.dst = buf.data();
    sp_.expand(e);
  }

  void tile(int64_t t, int64_t p, const TileScratch& scratch, AlignedBytes& buf,
            PanelPrefetch next) noexcept {
    const int64_t i0 = t * a_.mr();
    const int64_t j0 = p * w_.nr;
    const int mr = a_.rows(i0);
    const int nr = static_cast<int>(std::min<int64_t>(w_.nr, w_.n - j0));
    stage_tile(stage_, scratch, i0, j0, mr, nr, w_.nr, w_.kp, a_.zp_eff(i0), w_.col_sums.data(),
               [&](int64_t k0, int64_t kc, bool compensate, int32_t* c, int64_t ldc) {
                 if (path_ == SparsePath::direct) {
                   SpgemmUkernelParams u;
                   u.a = a_.tile(i0, k0);
                   u.mr = mr;
                   u.nr = nr;
                   u.c = c;
                   u.ldc = ldc;
                   u.a_zero_point = a_.zp_eff(i0);
                   u.col_sums = compensate ? w_.col_sums.data() + j0 : nullptr;
                   u.w = w_.panel(p) + (k0 / 8) * w_.nr * 5;
                   u.steps = kc / 8;
                   u.panel_nr = w_.nr;
                   sp_.ukernel(u);
                   return;
                 }
                 if (w_.kp > kMaxKChunk) expand(p, k0, kc, buf);
                 dense_ukernel(dense_, a_.tile(i0, k0), buf.data(), kc, mr, nr, c, ldc,
                               a_.zp_eff(i0), compensate ? w_.col_sums.data() + j0 : nullptr,
                               compensate ? next : PanelPrefetch{});
               });
  }

  const PackedSparseWeightsData& w_;
  OutputStage stage_;
  const SparseGemmKernels& sp_;
  const GemmKernels& dense_;
  SparsePath path_;
  PackedActivations a_;
};

}  // namespace

SparsePath run_sparse_gemm(const ActSpec& a, const PackedSparseWeights& weights, const OutSpec& out,
                           const SparseGemmOptions& options, const char* who) {
  if (options.path != SparsePath::automatic && options.path != SparsePath::direct &&
      options.path != SparsePath::expand) {
    fail("{}: options.path ({}) must be automatic, direct or expand", who,
         static_cast<int>(options.path));
  }
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

}  // namespace sparq
