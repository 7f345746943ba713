// FP32 GEMM driver (sparq/gemm/sgemm.hpp): argument checks, weight packing
// and the loop nest around the per-ISA microkernels of
// src/kernels/sgemm_kernels.hpp.
//
// Loop nest, per thread, over its share of the output (a range of rows
// times a range of weight panels), BLIS's order:
//   for each K block (kc <= table.kc, all blocks near-equal)
//     for each block of rows sized for L2 (kABlockBytes)
//       pack A: these rows, this K block, as MR-row tiles [kc][MR]
//       for each weight panel        (its K block, kc x NR, stays in L1)
//         for each A tile of the block   (streams from L2)
//           microkernel: C tile (+)= A tile x panel block, bias on the
//                        first K block, ReLU on the last
// The microkernel streams the narrower operand: per k step it reads MR
// floats of A from L2 and reuses NR floats of the panel from L1 (the other
// way round, as first written, streamed 2x-2.3x the bytes and ran at ~70%
// of the FMA peak). Weights are read from memory once per row block.
// Tables with a direct-A microkernel (AVX2) skip the packing and use another
// nest (see run_share): per panel group sized for L2, per MR-row tile of A
// read in place, per K block, per panel. Packing A with a scalar transposing
// loop took over half the time of narrow products (3136x64x576 on Zen 3:
// 54% in the packer, 24 GFLOPS; direct: 57, medians under load,
// docs/gemm.md).
// Which thread computes a tile never changes how it is summed (the K blocks
// depend on K and the table only, and the C store and reload between blocks
// is exact), so results are bit-identical for every thread count and for
// both nests.
#include "sparq/gemm/sgemm.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <vector>

#include "gemm/gemm_driver.hpp"  // threads_for
#include "gemm/sgemm_packed.hpp"
#include "kernels/sgemm_kernels.hpp"
#include "sparq/error.hpp"

#if defined(SPARQ_WITH_OPENMP)
#include <omp.h>
#endif

namespace sparq {

using detail::fail;
using detail::PackedWeightsF32Data;

PackedWeightsF32::PackedWeightsF32(std::shared_ptr<const PackedWeightsF32Data> data)
    : data_(std::move(data)) {}
int64_t PackedWeightsF32::n() const noexcept { return data_ ? data_->n : 0; }
int64_t PackedWeightsF32::k() const noexcept { return data_ ? data_->k : 0; }
std::size_t PackedWeightsF32::packed_bytes() const noexcept {
  return data_ ? data_->panels.size() : 0;
}
Isa PackedWeightsF32::isa() const noexcept { return data_ ? data_->isa : Isa::scalar; }

const char* sgemm_kernel_name(Isa isa) { return detail::sgemm_kernels(isa).ukernel_name; }

namespace {

constexpr int64_t kMaxDim = std::numeric_limits<int32_t>::max();

// Packed A bytes of one row block: well inside a 512 KiB L2 (Zen 3; 1 MiB on
// Zen 4, 2 MiB on recent Xeons), leaving room for C and the weight panels
// passing through.
constexpr int64_t kABlockBytes = 192 * 1024;

// Weight bytes of one panel group on the direct-A path (its panels, all of
// K): they stay in L2 while the A tiles pass.
constexpr int64_t kWBlockBytes = 192 * 1024;

std::atomic<int> g_last_threads{1};

// Packs w(n, k) = get(n, k) into panels of nr columns, [K][nr] each.
template <class Get>
// `reuse`, when given and held by no one else, keeps its buffer if large
// enough (a layer's per-thread scratch: no allocation and no page faults per
// call).
std::shared_ptr<PackedWeightsF32Data> pack(int64_t n, int64_t k, int nr, Isa isa, Get get,
                                           std::shared_ptr<PackedWeightsF32Data> reuse = nullptr) {
  const int64_t n_panels = (n + nr - 1) / nr;
  const auto bytes = static_cast<std::size_t>(n_panels * k * nr) * sizeof(float);
  std::shared_ptr<PackedWeightsF32Data> d = std::move(reuse);
  if (d == nullptr || d.use_count() != 1 || d->panels.size() < bytes) {
    d = std::make_shared<PackedWeightsF32Data>();
    d->panels = detail::AlignedBytes(bytes);
  }
  d->n = n;
  d->k = k;
  d->nr = nr;
  d->isa = isa;
  d->n_panels = n_panels;
  auto* out = reinterpret_cast<float*>(d->panels.data());
  for (int64_t p = 0; p < d->n_panels; ++p) {
    const int64_t j0 = p * nr;
    const int64_t cols = std::min<int64_t>(nr, n - j0);
    float* panel = out + p * k * nr;
    // 16 k at a time: one cache line of each source row (out_in) is read
    // whole while the 16 panel rows it feeds (1-2 KiB, contiguous) stay in
    // L1. Walking one k across all NR rows instead reads NR lines a power
    // of two apart, which share one L1 set and evict each other; walking
    // one row across all k writes a new line per element. Either made
    // packing ~10x slower than a batch-1 product.
    for (int64_t k0 = 0; k0 < k; k0 += 16) {
      const int64_t k1 = std::min(k, k0 + 16);
      for (int64_t j = 0; j < cols; ++j) {
        for (int64_t kk = k0; kk < k1; ++kk) panel[kk * nr + j] = get(j0 + j, kk);
      }
    }
    for (int64_t kk = 0; cols < nr && kk < k; ++kk) {  // padding columns: 0 (reused buffers too)
      for (int64_t j = cols; j < nr; ++j) panel[kk * nr + j] = 0.0f;
    }
  }
  return d;
}

// The same weights in the panel width of another kernel (sgemm() after the
// active ISA changed since packing).
std::shared_ptr<const PackedWeightsF32Data> repack(const PackedWeightsF32Data& src, int nr,
                                                   Isa isa) {
  return pack(src.n, src.k, nr, isa,
              [&](int64_t n, int64_t k) { return src.panel(n / src.nr)[k * src.nr + n % src.nr]; });
}

struct Problem {
  const float* a;
  int64_t m, k, lda;
  const PackedWeightsF32Data* w;
  const float* bias;
  bool relu;
  float* c;
  int64_t ldc;
};

// Rows [r0, r1) x panels [p0, p1) of the output, on the calling thread.
void run_share(const Problem& pr, const detail::SgemmKernels& kern, int64_t r0, int64_t r1,
               int64_t p0, int64_t p1) {
  if (r0 >= r1 || p0 >= p1) return;
  const int mr = kern.mr, nr = kern.nr;
  const int64_t k = pr.k, n = pr.w->n;
  const int64_t blocks = (k + kern.kc - 1) / kern.kc;
  const int64_t kcb = (k + blocks - 1) / blocks;  // near-equal K blocks
  detail::SgemmUkernelParams u;
  u.ldc = pr.ldc;
  if (kern.ukernel_direct != nullptr) {
    // A read in place, no packing. Panel groups whose weights (all of K)
    // stay in L2; per A tile, every K block of every panel of the group, so
    // the tile's C (MR rows x the group's columns) stays in L1 across its K
    // blocks, and each A row segment (MR x kc) in L1 across the group's
    // panels. (K blocks outermost, as on the packed path, re-read all of C
    // from L3 per K block: 3136x64x576 ran at 56 GFLOPS instead of 71.)
    const int64_t group = std::max<int64_t>(1, kWBlockBytes / (k * nr * int64_t{sizeof(float)}));
    u.lda = pr.lda;
    for (int64_t g0 = p0; g0 < p1; g0 += group) {
      const int64_t g1 = std::min(p1, g0 + group);
      for (int64_t row0 = r0; row0 < r1; row0 += mr) {
        u.mr = static_cast<int>(std::min<int64_t>(mr, r1 - row0));
        for (int64_t b = 0; b < blocks; ++b) {
          const int64_t k0 = b * kcb;
          u.kc = std::min(kcb, k - k0);
          u.first = b == 0;
          u.relu = pr.relu && b == blocks - 1;
          u.a = pr.a + row0 * pr.lda + k0;
          for (int64_t p = g0; p < g1; ++p) {
            const int64_t j0 = p * nr;
            u.w = pr.w->panel(p) + k0 * nr;
            u.nr = static_cast<int>(std::min<int64_t>(nr, n - j0));
            u.bias = pr.bias != nullptr ? pr.bias + j0 : nullptr;
            u.c = pr.c + row0 * pr.ldc + j0;
            kern.ukernel_direct(u);
          }
        }
      }
    }
    return;
  }
  // Rows per block: a multiple of MR, at least one tile.
  const int64_t block_tiles =
      std::max<int64_t>(1, kABlockBytes / (kcb * mr * int64_t{sizeof(float)}));
  const int64_t block_rows = block_tiles * mr;
  // Reused across calls: no allocation (and no zeroing) per call once warm.
  thread_local std::vector<float> apack;
  const auto need = static_cast<std::size_t>(block_rows * kcb);
  if (apack.size() < need) apack.resize(need);

  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t k0 = b * kcb;
    const int64_t kc = std::min(kcb, k - k0);
    u.kc = kc;
    u.first = b == 0;
    u.relu = pr.relu && b == blocks - 1;
    for (int64_t i0 = r0; i0 < r1; i0 += block_rows) {
      const int64_t i1 = std::min(r1, i0 + block_rows);
      const int64_t tiles = (i1 - i0 + mr - 1) / mr;
      // Pack A: tile t holds rows i0 + t*MR .. +MR (zero rows past i1) as [kc][MR].
      for (int64_t t = 0; t < tiles; ++t) {
        float* dst = apack.data() + t * mr * kc;
        const int64_t row0 = i0 + t * mr;
        const int rows = static_cast<int>(std::min<int64_t>(mr, i1 - row0));
        for (int i = 0; i < rows; ++i) {
          const float* src = pr.a + (row0 + i) * pr.lda + k0;
          for (int64_t kk = 0; kk < kc; ++kk) dst[kk * mr + i] = src[kk];
        }
        for (int i = rows; i < mr; ++i) {
          for (int64_t kk = 0; kk < kc; ++kk) dst[kk * mr + i] = 0.0f;
        }
      }
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t j0 = p * nr;
        u.w = pr.w->panel(p) + k0 * nr;
        u.nr = static_cast<int>(std::min<int64_t>(nr, n - j0));
        u.bias = pr.bias != nullptr ? pr.bias + j0 : nullptr;
        for (int64_t t = 0; t < tiles; ++t) {
          const int64_t row0 = i0 + t * mr;
          u.a = apack.data() + t * mr * kc;
          u.mr = static_cast<int>(std::min<int64_t>(mr, i1 - row0));
          u.c = pr.c + row0 * pr.ldc + j0;
          kern.ukernel(u);
        }
      }
    }
  }
}

}  // namespace

namespace detail {
int sgemm_last_threads() noexcept { return g_last_threads.load(std::memory_order_relaxed); }
bool sgemm_has_threads() noexcept {
#if defined(SPARQ_WITH_OPENMP)
  return true;
#else
  return false;
#endif
}
}  // namespace detail

namespace {

PackedWeightsF32 pack_checked(const float* weights, int64_t n, int64_t k, WeightLayout layout,
                              int64_t ld, std::shared_ptr<PackedWeightsF32Data>* scratch) {
  if (weights == nullptr) fail("pack_weights_f32: weights is null; expected N x K floats");
  if (n < 1 || n > kMaxDim) fail("pack_weights_f32: n ({}) must be in [1, 2^31 - 1]", n);
  if (k < 1 || k > kMaxDim) fail("pack_weights_f32: k ({}) must be in [1, 2^31 - 1]", k);
  const bool out_in = layout == WeightLayout::out_in;
  if (layout != WeightLayout::out_in && layout != WeightLayout::in_out) {
    fail("pack_weights_f32: layout ({}) must be out_in or in_out", static_cast<int>(layout));
  }
  const int64_t row = out_in ? k : n;
  if (ld == 0) ld = row;
  if (ld < row) {
    fail("pack_weights_f32: ld ({}) must be 0 or >= {} ({} per row in the {} layout)", ld, row,
         out_in ? "k" : "n", out_in ? "out_in" : "in_out");
  }
  const Isa isa = active_isa();
  const auto& kern = detail::sgemm_kernels(isa);
  std::shared_ptr<PackedWeightsF32Data> reuse;
  if (scratch != nullptr) reuse = std::move(*scratch);
  auto data =
      out_in ? pack(
                   n, k, kern.nr, isa, [&](int64_t j, int64_t kk) { return weights[j * ld + kk]; },
                   std::move(reuse))
             : pack(
                   n, k, kern.nr, isa, [&](int64_t j, int64_t kk) { return weights[kk * ld + j]; },
                   std::move(reuse));
  if (scratch != nullptr) *scratch = data;
  return PackedWeightsF32(std::move(data));
}

}  // namespace

PackedWeightsF32 pack_weights_f32(const float* weights, int64_t n, int64_t k, WeightLayout layout,
                                  int64_t ld) {
  return pack_checked(weights, n, k, layout, ld, nullptr);
}

namespace detail {
PackedWeightsF32 pack_weights_f32_scratch(std::shared_ptr<PackedWeightsF32Data>& scratch,
                                          const float* weights, int64_t n, int64_t k,
                                          WeightLayout layout, int64_t ld) {
  return pack_checked(weights, n, k, layout, ld, &scratch);
}
}  // namespace detail

void sgemm(const float* a, int64_t m, int64_t k, int64_t lda, const PackedWeightsF32& w,
           std::span<const float> bias, bool relu, float* c, int64_t ldc,
           const GemmOptions& options) {
  if (w.empty()) fail("sgemm: the packed weights are empty; expected pack_weights_f32's result");
  const int64_t n = w.n();
  if (k != w.k()) fail("sgemm: k ({}) must equal the packed weights' k ({})", k, w.k());
  if (m < 0) fail("sgemm: m ({}) must be >= 0", m);
  if (lda == 0) lda = k;
  if (ldc == 0) ldc = n;
  if (lda < k) fail("sgemm: lda ({}) must be 0 or >= k ({})", lda, k);
  if (ldc < n) fail("sgemm: ldc ({}) must be 0 or >= n ({})", ldc, n);
  if (!bias.empty() && static_cast<int64_t>(bias.size()) != n) {
    fail("sgemm: bias has {} values; expected 0 or n ({})", bias.size(), n);
  }
  if (options.threads < 0) fail("sgemm: options.threads ({}) must be >= 0", options.threads);
  if (m == 0) return;
  if (a == nullptr) fail("sgemm: a is null; expected {} x {} floats", m, k);
  if (c == nullptr) fail("sgemm: c is null; expected {} x {} floats", m, n);
  if (m > std::numeric_limits<int64_t>::max() / std::max(lda, ldc)) {
    fail("sgemm: m ({}) times the leading dimension ({}) overflows int64", m, std::max(lda, ldc));
  }

  const Isa isa = active_isa();
  const auto& kern = detail::sgemm_kernels(isa);
  std::shared_ptr<const PackedWeightsF32Data> repacked;
  const PackedWeightsF32Data* data = &w.data();
  if (data->nr != kern.nr) {  // packed for another ISA's kernel: never misread it
    repacked = repack(*data, kern.nr, isa);
    data = repacked.get();
  }
  const Problem pr{a, m, k, lda, data, bias.empty() ? nullptr : bias.data(), relu, c, ldc};

  const int64_t tiles = (m + kern.mr - 1) / kern.mr;
  const int64_t panels = data->n_panels;
  // Each thread takes one rectangle of row tiles x panels (the INT8 driver's
  // grid: weights split across threads first, rows too when that balances
  // better). A thread packs the A rows of its rectangle itself; a tile is
  // summed the same way whichever thread computes it.
  auto share = [&](int tid, int nt) {
    const detail::ThreadGrid grid = detail::thread_grid(panels, tiles, nt);
    if (tid >= grid.row_groups * grid.panel_groups) return;
    const auto [p0, p1] = detail::share(panels, grid.panel_groups, tid % grid.panel_groups);
    const auto [t0, t1] = detail::share(tiles, grid.row_groups, tid / grid.panel_groups);
    run_share(pr, kern, t0 * kern.mr, std::min(m, t1 * kern.mr), p0, p1);
  };
#if defined(SPARQ_WITH_OPENMP)
  // Only an OpenMP build has threads to choose.
  const int threads = detail::threads_for(
      options.threads, m * n * k, static_cast<int64_t>(data->panels.size()), tiles * panels);
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    {
      const int team = omp_get_num_threads();
      if (omp_get_thread_num() == 0) g_last_threads.store(team, std::memory_order_relaxed);
      share(omp_get_thread_num(), team);
    }
    return;
  }
#endif
  g_last_threads.store(1, std::memory_order_relaxed);
  share(0, 1);
}

}  // namespace sparq
