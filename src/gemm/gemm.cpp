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

#include <algorithm>
#include <cstring>
#include <memory>

#include "gemm/gemm_driver.hpp"
#include "quant/dynamic_qparams.hpp"
#include "kernels/gemm_kernels.hpp"
#include "sparq/detail/packed_weights_data.hpp"
#include "sparq/error.hpp"
#include "sparq/quant/qparams.hpp"
#include "sparq/quant/quantize.hpp"

namespace sparq {
namespace detail {
namespace {

class Driver {
 public:
  Driver(const ActSpec& a, const PackedWeightsData& w, const OutSpec& out, const GemmKernels& kern,
         uint8_t* a_packed, const int32_t* zp_eff)
      : a_(a), w_(w), stage_(out, kern), kern_(kern), a_packed_(a_packed), zp_eff_(zp_eff) {
    tiles_ = (a.m + kern.mr - 1) / kern.mr;
  }

  int64_t tiles() const { return tiles_; }

  void pack_tile(int64_t t) const noexcept {
    const int64_t i0 = t * kern_.mr;
    GemmPackAParams p;
    p.a = a_.data + i0 * a_.ld;
    p.lda = a_.ld;
    p.k = a_.k;
    p.kp = w_.kp;
    p.mr = static_cast<int>(std::min<int64_t>(kern_.mr, a_.m - i0));
    p.kr = w_.kr;
    p.shift = a_.is_signed ? kern_.a_shift_s8 : kern_.a_shift_u8;
    p.dst = a_packed_ + i0 * w_.kp * kern_.a_elem_bytes;
    kern_.pack_a(p);
  }

  // Computes the output tiles of panels [p0, p1) x row tiles [t0, t1).
  void run(int64_t p0, int64_t p1, int64_t t0, int64_t t1) noexcept {
    const int mr = kern_.mr;
    const int nr = w_.nr;
    const TileScratch scratch = tile_scratch(mr, nr, w_.kp > kMaxKChunk);
    const int64_t block = std::max<int64_t>(1, kABlockBytes / (mr * w_.kp));
    for (int64_t tb = t0; tb < t1; tb += block) {
      const int64_t te = std::min(t1, tb + block);
      for (int64_t p = p0; p < p1; ++p) {
        for (int64_t t = tb; t < te; ++t) {
          // With several row tiles per panel, they share the prefetch of the
          // next panel (this thread's) into L2: its first tile then reads L2.
          const int8_t* next = nullptr;
          int64_t lines = 0;
          if (te - tb > 1 && p + 1 < p1) {
            const int64_t total = w_.kp * w_.nr / 64;
            const int64_t l0 = total * (t - tb) / (te - tb);
            lines = total * (t - tb + 1) / (te - tb) - l0;
            next = w_.panel(p + 1) + l0 * 64;
          }
          tile(t, p, scratch.tile, scratch.wide, next, lines);
        }
      }
    }
  }

  const OutputStage& stage() const { return stage_; }

 private:
  void tile(int64_t t, int64_t p, int32_t* scratch, int64_t* wide, const int8_t* prefetch,
            int64_t prefetch_lines) noexcept {
    const int64_t i0 = t * kern_.mr;
    const int64_t j0 = p * w_.nr;
    const int mr = static_cast<int>(std::min<int64_t>(kern_.mr, a_.m - i0));
    const int nr = static_cast<int>(std::min<int64_t>(w_.nr, w_.n - j0));
    const uint8_t* at = a_packed_ + i0 * w_.kp * kern_.a_elem_bytes;
    const int8_t* wp = w_.panel(p);
    GemmUkernelParams u;
    u.mr = mr;
    u.nr = nr;
    if (w_.kp <= kMaxKChunk) {
      u.a = at;
      u.w = wp;
      u.kp = w_.kp;
      u.a_zero_point = zp_eff_ + i0;
      u.col_sums = w_.col_sums.data() + j0;
      u.w_prefetch = prefetch;
      u.prefetch_lines = prefetch_lines;
      const OutSpec& out = stage_.spec();
      if (out.kind == OutKind::s32) {
        u.c = static_cast<int32_t*>(out.c) + i0 * out.ldc + j0;
        u.ldc = out.ldc;
        kern_.ukernel(u);
        return;
      }
      u.c = scratch;
      u.ldc = w_.nr;
      kern_.ukernel(u);
      stage_.stage32(scratch, w_.nr, i0, j0, mr, nr, out.bias);
      return;
    }
    // K beyond the int32 bound: exact int32 partial sums per chunk (no
    // compensation), combined in int64.
    std::fill(wide, wide + mr * w_.nr, int64_t{0});
    u.c = scratch;
    u.ldc = w_.nr;
    for (int64_t k0 = 0; k0 < w_.kp; k0 += kMaxKChunk) {
      u.a = at + k0 * mr * kern_.a_elem_bytes;
      u.w = wp + k0 * w_.nr;
      u.kp = std::min(kMaxKChunk, w_.kp - k0);
      kern_.ukernel(u);
      OutputStage::add_chunk(wide, scratch, w_.nr, mr, nr);
    }
    OutputStage::compensate(wide, w_.nr, zp_eff_ + i0, w_.col_sums.data() + j0, mr, nr);
    stage_.stage64(wide, w_.nr, scratch, i0, j0, mr, nr);
  }

  const ActSpec& a_;
  const PackedWeightsData& w_;
  OutputStage stage_;
  const GemmKernels& kern_;
  uint8_t* a_packed_;
  const int32_t* zp_eff_;
  int64_t tiles_ = 0;
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
  thread_local std::vector<uint8_t> a_buffer;
  thread_local std::vector<int32_t> zp_buffer;
  a_buffer.resize(static_cast<std::size_t>(a.m * w->kp * kern.a_elem_bytes));
  zp_buffer.resize(static_cast<std::size_t>(a.m));
  const int32_t shift = a.is_signed ? (kern.a_shift_s8 == 128 ? 128 : 0) : kern.a_shift_u8;
  for (int64_t i = 0; i < a.m; ++i)
    zp_buffer[static_cast<std::size_t>(i)] = a.zero_points[i] + shift;

  Driver driver(a, *w, out, kern, a_buffer.data(), zp_buffer.data());
  const int64_t tiles = driver.tiles();
  const int64_t panels = w->n_panels;
  run_on_threads(
      driver, tiles, panels,
      threads_for(threads, a.m * w->n * w->kp, w->n_panels * w->nr * w->kp, panels * tiles));
  driver.stage().fail_if_overflowed(who, a.k);
}

// The dense GEMM's checks: the shared ones with this API's names.
template <class T>
ActSpec check_activations(const Activations<T>& a, const PackedWeights& w, const char* who,
                          std::vector<int32_t>& zps) {
  return detail::check_activations(a, w.empty(), w.k(), who, "pack_weights", zps);
}

int64_t check_output(const void* c, int64_t m, int64_t ldc, const PackedWeights& w,
                     const char* who) {
  return detail::check_output(c, m, ldc, w.n(), who);
}

template <class T>
void gemm_s32(const Activations<T>& a, const PackedWeights& w, int32_t* c, int64_t ldc,
              const GemmOptions& o) {
  const char* who = "gemm (int32 output)";
  thread_local std::vector<int32_t> zps;  // per-call scratch, kept: no allocation per call
  const ActSpec as = check_activations(a, w, who, zps);
  OutSpec out;
  out.kind = OutKind::s32;
  out.c = c;
  out.ldc = check_output(c, a.m, ldc, w, who);
  run_gemm(as, w, out, o.threads, who);
}

template <class T, class Out>
void gemm_requant(const Activations<T>& a, const PackedWeights& w, const RequantizeStage& s, Out* c,
                  int64_t ldc, const GemmOptions& o) {
  const char* who = "gemm (requantized output)";
  thread_local std::vector<int32_t> zps;  // per-call scratch, kept: no allocation per call
  const ActSpec as = check_activations(a, w, who, zps);
  OutSpec out;
  thread_local RequantArrays arrays;  // kept across calls: no allocation per call
  check_requantize<Out>(s, w.n(), who, out, arrays);
  out.c = c;
  out.ldc = check_output(c, a.m, ldc, w, who);
  run_gemm(as, w, out, o.threads, who);
}

template <class T>
void gemm_dequant(const Activations<T>& a, const PackedWeights& w, const DequantizeStage& s,
                  float* c, int64_t ldc, const GemmOptions& o) {
  const char* who = "gemm (dequantized output)";
  thread_local std::vector<int32_t> zps;  // per-call scratch, kept: no allocation per call
  const ActSpec as = check_activations(a, w, who, zps);
  thread_local std::vector<float> row_scale;  // per-call scratch, kept
  OutSpec out;
  check_dequantize(s, a.m, w.n(), w.scales(), who, row_scale, out);
  out.c = c;
  out.ldc = check_output(c, a.m, ldc, w, who);
  run_gemm(as, w, out, o.threads, who);
}

}  // namespace
}  // namespace detail

void gemm(const ActivationsU8& a, const PackedWeights& w, int32_t* c, int64_t ldc,
          const GemmOptions& options) {
  detail::gemm_s32(a, w, c, ldc, options);
}
void gemm(const ActivationsS8& a, const PackedWeights& w, int32_t* c, int64_t ldc,
          const GemmOptions& options) {
  detail::gemm_s32(a, w, c, ldc, options);
}
void gemm(const ActivationsU8& a, const PackedWeights& w, const RequantizeStage& stage, uint8_t* c,
          int64_t ldc, const GemmOptions& options) {
  detail::gemm_requant(a, w, stage, c, ldc, options);
}
void gemm(const ActivationsU8& a, const PackedWeights& w, const RequantizeStage& stage, int8_t* c,
          int64_t ldc, const GemmOptions& options) {
  detail::gemm_requant(a, w, stage, c, ldc, options);
}
void gemm(const ActivationsS8& a, const PackedWeights& w, const RequantizeStage& stage, uint8_t* c,
          int64_t ldc, const GemmOptions& options) {
  detail::gemm_requant(a, w, stage, c, ldc, options);
}
void gemm(const ActivationsS8& a, const PackedWeights& w, const RequantizeStage& stage, int8_t* c,
          int64_t ldc, const GemmOptions& options) {
  detail::gemm_requant(a, w, stage, c, ldc, options);
}
void gemm(const ActivationsU8& a, const PackedWeights& w, const DequantizeStage& stage, float* c,
          int64_t ldc, const GemmOptions& options) {
  detail::gemm_dequant(a, w, stage, c, ldc, options);
}
void gemm(const ActivationsS8& a, const PackedWeights& w, const DequantizeStage& stage, float* c,
          int64_t ldc, const GemmOptions& options) {
  detail::gemm_dequant(a, w, stage, c, ldc, options);
}

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

  thread_local std::vector<uint8_t> q;
  q.resize(static_cast<std::size_t>(m * k));
  thread_local std::vector<int32_t> zps;  // per-call scratch, kept: no allocation per call
  thread_local std::vector<float> row_scale;
  zps.resize(static_cast<std::size_t>(m));
  row_scale.resize(static_cast<std::size_t>(m));
  // One definition of dynamic quantization (src/quant/dynamic_qparams.hpp
  // and detail::quantize_tensor): the same u8 values as sparq::quantize and
  // the dynamic layers of sparq::nn, ties included.
  if (options.per_row) {
    for (int64_t i = 0; i < m; ++i) {
      const QParams qp = detail::dynamic_u8_qparams(x + i * ldx, 1, k, ldx, who);
      zps[static_cast<std::size_t>(i)] = qp.zero_point;
      row_scale[static_cast<std::size_t>(i)] = qp.scale;
    }
  } else {
    const QParams qp = detail::dynamic_u8_qparams(x, m, k, ldx, who);
    std::fill(zps.begin(), zps.end(), qp.zero_point);
    std::fill(row_scale.begin(), row_scale.end(), qp.scale);
  }
  for (int64_t i = 0; i < m; ++i) {
    const auto r = static_cast<std::size_t>(i);
    detail::quantize_tensor(DType::u8, x + i * ldx, q.data() + i * k, static_cast<std::size_t>(k),
                            1.0f / row_scale[r], zps[r], 0, 255);
  }
  detail::ActSpec as;
  as.data = q.data();
  as.m = m;
  as.k = k;
  as.ld = k;
  as.is_signed = false;
  as.zero_points = zps.data();
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
