// The GEMM driver: validation, activation packing, the loop nest over
// (row tiles x weight panels), threads, K chunks beyond the int32 bound, and
// the output stages. The inner loops live in src/kernels/<isa>/.
//
// Loop nest (per thread, over its own panels or its own row tiles):
//   for each block of row tiles whose packed A fits in about half of L2
//     for each weight panel (NR channels x K; 256 KiB at K = 4096)
//       for each row tile in the block: microkernel over all of K, then the
//       output stage on the tile while it is hot in L1.
// With one row block (M <= ~90 at K = 4096) every weight byte is read from
// memory exactly once per call, panel after panel: the bandwidth-bound
// small-M shapes stream the packed buffer front to back. The panel then sits
// in L2 while the other row tiles of the block use it.
//
// Threads split panels (or, when there are fewer panels than threads, row
// tiles): every output element is computed by the same instructions in the
// same order whatever the thread count, so results are identical.
#include "sparq/gemm/gemm.hpp"

#include <concepts>

#include <algorithm>
#include <cstring>
#include <memory>

#include "gemm/gemm_driver.hpp"
#include "kernels/gemm_kernels.hpp"
#include "quant/dynamic_qparams.hpp"
#include "sparq/detail/packed_weights_data.hpp"
#include "sparq/error.hpp"
#include "sparq/gemm/sparse_gemm.hpp"
#include "sparq/quant/qparams.hpp"
#include "sparq/quant/quantize.hpp"

namespace sparq {
namespace detail {
namespace {

// The dense plug-in of the shared loop nest (gemm_driver.hpp): a weight
// panel is read as packed, by the dense microkernel.
class Driver {
 public:
  Driver(const ActSpec& a, const PackedWeightsData& w, const OutSpec& out, const GemmKernels& kern)
      : w_(w),
        stage_(out, kern),
        kern_(kern),
        a_(a, kern, kern.pack_a, kern.mr, w.kr, w.kp, kern.a_elem_bytes) {}

  int64_t tiles() const { return a_.tiles(); }
  void pack_tile(int64_t t) const noexcept { a_.pack_tile(t); }
  int64_t bad_row() const noexcept { return a_.bad_row(); }
  const OutputStage& stage() const { return stage_; }

  // Computes the output tiles of panels [p0, p1) x row tiles [t0, t1).
  void run(int64_t p0, int64_t p1, int64_t t0, int64_t t1) noexcept {
    if (a_.bad_row() >= 0) return;  // a non-finite dynamic row: run_gemm throws
    const TileScratch scratch = tile_scratch(a_.mr(), w_.nr, w_.kp > kMaxKChunk);
    const int64_t block = std::max<int64_t>(1, kABlockBytes / (a_.mr() * w_.kp));
    for_each_tile(
        p0, p1, t0, t1, block, [](int64_t) {},
        [&](int64_t t, int64_t p, int64_t index, int64_t count) {
          // With several row tiles per panel, they share the prefetch of the
          // next panel (this thread's).
          PanelPrefetch next;
          if (count > 1 && p + 1 < p1) {
            next = prefetch_share(w_.panel(p + 1), w_.kp * w_.nr, index, count);
          }
          tile(t, p, scratch, next);
        });
  }

 private:
  void tile(int64_t t, int64_t p, const TileScratch& scratch, PanelPrefetch next) noexcept {
    const int64_t i0 = t * a_.mr();
    const int64_t j0 = p * w_.nr;
    const int mr = a_.rows(i0);
    const int nr = static_cast<int>(std::min<int64_t>(w_.nr, w_.n - j0));
    stage_tile(stage_, scratch, i0, j0, mr, nr, w_.nr, w_.kp, a_.zp_eff(i0), w_.col_sums.data(),
               [&](int64_t k0, int64_t kc, bool compensate, int32_t* c, int64_t ldc) {
                 // The chunks of K beyond the int32 bound: uncompensated, no prefetch.
                 dense_ukernel(kern_, a_.tile(i0, k0), w_.panel(p) + k0 * w_.nr, kc, mr, nr, c, ldc,
                               compensate ? a_.zp_eff(i0) : nullptr,
                               compensate ? w_.col_sums.data() + j0 : nullptr,
                               compensate ? next : PanelPrefetch{});
               });
  }

  const PackedWeightsData& w_;
  OutputStage stage_;
  const GemmKernels& kern_;
  PackedActivations a_;
};

void run_gemm(const ActSpec& a, const PackedWeights& weights, const OutSpec& out, int threads,
              const char* who) {
  if (a.m == 0) return;
  // Per call, by M: e.g. amx runs a few rows on its avx512vnni kernel, from
  // the same packed weights.
  const GemmKernels& kern = gemm_kernels_for(active_isa(), a.m);
  std::shared_ptr<const PackedWeightsData> repacked;
  const PackedWeightsData* w = &weights.data();
  if (!layout_compatible(kern, w->nr, w->kr)) {
    // Packed for another layout (the active ISA changed since packing):
    // repack (slow, but never wrong).
    repacked = repack_weights(*w, kern.isa);
    w = repacked.get();
  }
  Driver driver(a, *w, out, kern);
  const int64_t tiles = driver.tiles();
  const int64_t panels = w->n_panels;
  run_on_threads(
      driver, tiles, panels,
      threads_for(threads, a.m * w->n * w->kp, w->n_panels * w->nr * w->kp, panels * tiles));
  if (driver.bad_row() >= 0) {
    fail("{}: input row {} holds NaN or infinity; expected finite values", who, driver.bad_row());
  }
  driver.stage().fail_if_overflowed(who, a.k);
}

// The name errors give the call: which weights, which stage.
template <class Stage>
constexpr const char* gemm_name(bool sparse) {
  if constexpr (std::same_as<Stage, Int32Output>) {
    return sparse ? "gemm (sparse, int32 output)" : "gemm (int32 output)";
  } else if constexpr (std::same_as<Stage, RequantizeStage>) {
    return sparse ? "gemm (sparse, requantized output)" : "gemm (requantized output)";
  } else {
    return sparse ? "gemm (sparse, dequantized output)" : "gemm (dequantized output)";
  }
}

}  // namespace
}  // namespace detail

// The one GEMM entry: argument checks and the stage's OutSpec here, the loop
// nest in run_gemm (dense, above) or run_sparse_gemm (sparse_gemm.cpp).
template <GemmActivationType T, GemmWeights W, class Stage, class Out>
requires GemmStageOutput<Stage, Out>
typename GemmTraits<W>::Result gemm(const Activations<T>& a, const W& w, const Stage& stage, Out* c,
                                    int64_t ldc, const typename GemmTraits<W>::Options& options) {
  constexpr bool sparse = std::same_as<W, PackedSparseWeights>;
  const char* who = detail::gemm_name<Stage>(sparse);
  thread_local std::vector<int32_t> zps;  // per-call scratch, kept: no allocation per call
  const detail::ActSpec as = detail::check_activations(
      a, w.empty(), w.k(), who, sparse ? "pack_sparse_weights" : "pack_weights", zps);
  detail::OutSpec out;
  if constexpr (std::same_as<Stage, RequantizeStage>) {
    thread_local detail::RequantArrays arrays;  // kept across calls: no allocation per call
    detail::check_requantize<Out>(stage, w.n(), who, out, arrays);
  } else if constexpr (std::same_as<Stage, DequantizeStage>) {
    thread_local std::vector<float> row_scale;  // per-call scratch, kept
    detail::check_dequantize(stage, a.m, w.n(), w.scales(), who, row_scale, out);
  } else {
    out.kind = detail::OutKind::s32;
  }
  out.c = c;
  out.ldc = detail::check_output(c, a.m, ldc, w.n(), who);
  if constexpr (sparse) {
    return detail::run_sparse_gemm(as, w, out, options, who);
  } else {
    detail::run_gemm(as, w, out, options.threads, who);
  }
}

#define SPARQ_GEMM_INSTANTIATE_W(T, W)                                                         \
  template GemmTraits<W>::Result gemm(const Activations<T>&, const W&, const Int32Output&,     \
                                      int32_t*, int64_t, const GemmTraits<W>::Options&);       \
  template GemmTraits<W>::Result gemm(const Activations<T>&, const W&, const RequantizeStage&, \
                                      uint8_t*, int64_t, const GemmTraits<W>::Options&);       \
  template GemmTraits<W>::Result gemm(const Activations<T>&, const W&, const RequantizeStage&, \
                                      int8_t*, int64_t, const GemmTraits<W>::Options&);        \
  template GemmTraits<W>::Result gemm(const Activations<T>&, const W&, const DequantizeStage&, \
                                      float*, int64_t, const GemmTraits<W>::Options&);
#define SPARQ_GEMM_INSTANTIATE(T)            \
  SPARQ_GEMM_INSTANTIATE_W(T, PackedWeights) \
  SPARQ_GEMM_INSTANTIATE_W(T, PackedSparseWeights)
SPARQ_GEMM_INSTANTIATE(uint8_t)
SPARQ_GEMM_INSTANTIATE(int8_t)
#undef SPARQ_GEMM_INSTANTIATE
#undef SPARQ_GEMM_INSTANTIATE_W

void linear_dynamic(const float* x, int64_t m, int64_t ldx, const PackedWeights& w,
                    std::span<const float> bias, float* y, int64_t ldy,
                    const DynamicOptions& options) {
  const char* who = "linear_dynamic";
  if (w.empty()) detail::fail("{}: weights are empty; expected the result of pack_weights", who);
  if (m < 0) detail::fail("{}: m ({}) must be >= 0", who, m);
  const int64_t k = w.k();
  if (ldx == 0) ldx = k;
  if (ldx < k) detail::fail("{}: ldx ({}) must be >= k ({}) or 0", who, ldx, k);
  if (m > 0 && x == nullptr) detail::fail("{}: x is null with m = {}", who, m);
  if (!(bias.empty() || static_cast<int64_t>(bias.size()) == w.n())) {
    detail::fail("{}: bias has {} values; expected 0 or n ({})", who, bias.size(), w.n());
  }
  ldy = detail::check_output(y, m, ldy, w.n(), who);
  if (m == 0) return;

  thread_local std::vector<int32_t> zps;  // per-call scratch, kept: no allocation per call
  thread_local std::vector<float> row_scale;
  zps.resize(static_cast<std::size_t>(m));
  row_scale.resize(static_cast<std::size_t>(m));
  // One definition of dynamic quantization (src/quant/dynamic_qparams.hpp
  // and detail::quantize_tensor): the same u8 values as sparq::quantize and
  // the dynamic layers of sparq::nn, ties included. The rows are quantized
  // tile by tile while the driver packs them, on the GEMM's threads (per
  // row: range, then quantize, each row read twice, from L1 the second
  // time); per tensor the range needs every row first.
  detail::DynamicRows rows;
  rows.x = x;
  rows.ldx = ldx;
  rows.per_row = options.per_row;
  rows.scale = row_scale.data();
  rows.zero_point = zps.data();
  rows.who = who;
  if (!options.per_row) {
    const QParams qp = detail::dynamic_u8_qparams(x, m, k, ldx, who);
    std::fill(zps.begin(), zps.end(), qp.zero_point);
    std::fill(row_scale.begin(), row_scale.end(), qp.scale);
  }
  detail::ActSpec as;
  as.m = m;
  as.k = k;
  as.ld = ldx;
  as.is_signed = false;
  as.zero_points = zps.data();
  as.dynamic = &rows;
  detail::OutSpec out;
  out.kind = detail::OutKind::f32;
  out.c = y;
  out.ldc = ldy;
  out.row_scale = row_scale.data();
  out.col_scale = w.scales().data();
  out.fbias = bias.empty() ? nullptr : bias.data();
  out.relu = options.relu;
  detail::run_gemm(as, w, out, options.threads, who);
}

}  // namespace sparq
