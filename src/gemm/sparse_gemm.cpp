// The 2:4 sparse GEMM driver: validation, path choice, activation packing,
// the loop nests of the direct and expand paths, threads, K chunks beyond
// the int32 bound, and the output stages (the dense table's kernels, so the
// results are bit-identical to the dense gemm; see sparse_gemm.hpp).
//
// direct: for each panel, for each row tile of up to MR rows: the sparse
//   microkernel over all of K, then the output stage on the tile. With
//   M <= MR the compressed weights stream from memory exactly once.
// expand: for each panel: expand it into a thread-local dense panel buffer
//   (256 KiB at K = 4096 with NR = 64: it stays in L2 while it is used),
//   then every row tile runs the dense microkernel over that buffer. Above
//   kMaxKChunk, each K chunk is expanded per row tile (rare shapes; the
//   extra expansion is small next to the chunk's multiplies).
//
// Threads split panels (or row tiles when there are fewer panels than
// threads), like the dense driver: every output element is computed by the
// same instructions whatever the thread count.
//
// The output-stage code below mirrors src/gemm/gemm.cpp's Driver::stage32 /
// stage64 (that driver is file-local there); it must stay identical for the
// results to stay bit-identical, which tests/kernels/sparse_gemm_test.cpp
// checks against the dense gemm.
#include "sparq/gemm/sparse_gemm.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <type_traits>

#include "kernels/sparse_gemm_kernels.hpp"
#include "sparq/detail/packed_sparse_weights_data.hpp"
#include "sparq/error.hpp"
#include "sparq/threads.hpp"

#if defined(SPARQ_WITH_OPENMP)
#include <omp.h>
#endif

namespace sparq {
namespace detail {
namespace {

enum class OutKind { s32, u8, s8, f32 };

// L2 bytes per core assumed by the path choice (Zen 4 / Ice Lake: 1 MiB+).
constexpr int64_t kL2Bytes = 1024 * 1024;

struct ActSpec {
  const uint8_t* data = nullptr;
  int64_t m = 0;
  int64_t k = 0;
  int64_t ld = 0;
  bool is_signed = false;
  int32_t zero_point = 0;
};

struct OutSpec {
  OutKind kind = OutKind::s32;
  void* c = nullptr;
  int64_t ldc = 0;
  const int32_t* multiplier = nullptr;
  const int32_t* shift = nullptr;
  const int32_t* bias = nullptr;
  int32_t zero_point = 0;
  int32_t qmin = 0;
  int32_t qmax = 0;
  float row_scale = 1.0f;
  const float* col_scale = nullptr;
  const float* fbias = nullptr;
  bool relu = false;
};

int32_t saturate32(int64_t v) {
  return static_cast<int32_t>(std::clamp<int64_t>(v, std::numeric_limits<int32_t>::min(),
                                                  std::numeric_limits<int32_t>::max()));
}

int resolve_threads(int requested) {
#if defined(SPARQ_WITH_OPENMP)
  return std::max(1, requested > 0 ? requested : num_threads());
#else
  (void)requested;
  return 1;
#endif
}

bool expand_possible(const SparseGemmKernels& sp, const GemmKernels& dense) {
  return dense.nr == sp.nr && dense.kr == 4;
}

SparsePath choose(const PackedSparseWeightsData& w, int64_t m, SparsePath requested) {
  const SparseGemmKernels& sp = sparse_gemm_kernels(active_isa());
  if (!expand_possible(sp, gemm_kernels(active_isa()))) return SparsePath::direct;
  if (requested != SparsePath::automatic) return requested;
  // Direct pays off while reading the weights is the limit: few rows and
  // weights that come from beyond L2. Weights resident in L2 are read fast
  // enough that dense multiply throughput wins sooner: halve the crossover.
  const int64_t bytes = w.n_panels * w.panel_bytes();
  const int64_t limit = bytes > kL2Bytes ? sp.direct_max_m : sp.direct_max_m / 2;
  return m <= std::max<int64_t>(limit, 1) ? SparsePath::direct : SparsePath::expand;
}

class Driver {
 public:
  Driver(const ActSpec& a, const PackedSparseWeightsData& w, const OutSpec& out,
         const SparseGemmKernels& sp, const GemmKernels& dense, SparsePath path)
      : a_(a), w_(w), out_(out), sp_(sp), dense_(dense), path_(path) {
    mr_ = path == SparsePath::direct ? sp.mr : dense.mr;
    kr_ = path == SparsePath::direct ? 8 : 4;
    // The direct kernels read bytes packed by the portable byte packer; the
    // expand path feeds the dense microkernel, so it packs with the dense
    // table's pack_a, whose elements may be wider (AVX2: int16).
    pack_a_ = path == SparsePath::direct ? gemm_pack_a__scalar : dense.pack_a;
    elem_ = path == SparsePath::direct ? 1 : dense.a_elem_bytes;
    tiles_ = (a.m + mr_ - 1) / mr_;
    a_packed_.resize(static_cast<std::size_t>(a.m * w.kp * elem_));
    const int32_t shift = a.is_signed ? dense.a_shift_s8 : dense.a_shift_u8;
    zp_eff_ = a.zero_point + (a.is_signed ? (shift == 128 ? 128 : 0) : shift);
    zp_rows_.assign(static_cast<std::size_t>(mr_), zp_eff_);
  }

  int64_t tiles() const { return tiles_; }

  void pack_tile(int64_t t) noexcept {
    const int64_t i0 = t * mr_;
    GemmPackAParams p;
    p.a = a_.data + i0 * a_.ld;
    p.lda = a_.ld;
    p.k = a_.k;
    p.kp = w_.kp;
    p.mr = static_cast<int>(std::min<int64_t>(mr_, a_.m - i0));
    p.kr = kr_;
    p.shift = a_.is_signed ? dense_.a_shift_s8 : dense_.a_shift_u8;
    p.dst = a_packed_.data() + i0 * w_.kp * elem_;
    pack_a_(p);
  }

  void run(int64_t p0, int64_t p1, int64_t t0, int64_t t1) noexcept {
    const int nr = w_.nr;
    std::vector<int32_t> scratch(static_cast<std::size_t>(mr_ * nr));
    std::vector<int64_t> wide;
    if (w_.kp > kMaxKChunk) wide.resize(static_cast<std::size_t>(mr_ * nr));
    thread_local AlignedBytes dense_panel;
    if (path_ == SparsePath::expand) {
      const auto need = static_cast<std::size_t>(std::min(w_.kp, kMaxKChunk) * nr);
      if (dense_panel.size() < need) dense_panel = AlignedBytes(need);
    }
    for (int64_t p = p0; p < p1; ++p) {
      if (path_ == SparsePath::expand && w_.kp <= kMaxKChunk) expand(p, 0, w_.kp, dense_panel);
      for (int64_t t = t0; t < t1; ++t) tile(t, p, scratch.data(), wide.data(), dense_panel);
    }
  }

  bool overflowed() const { return overflow_.load(); }
  int64_t overflow_row() const { return overflow_row_; }
  int64_t overflow_col() const { return overflow_col_; }
  int64_t overflow_value() const { return overflow_value_; }

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
              int64_t ldc, AlignedBytes& buf) noexcept {
    const int64_t i0 = t * mr_;
    const int mr = static_cast<int>(std::min<int64_t>(mr_, a_.m - i0));
    const int nr = static_cast<int>(std::min<int64_t>(w_.nr, w_.n - p * w_.nr));
    const uint8_t* at = a_packed_.data() + (i0 * w_.kp + k0 * mr) * elem_;
    const int32_t* sums = compensate ? w_.col_sums.data() + p * w_.nr : nullptr;
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
      u.a_zero_point = zp_rows_.data();
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
    u.a_zero_point = zp_rows_.data();
    u.col_sums = sums;
    dense_.ukernel(u);
  }

  void tile(int64_t t, int64_t p, int32_t* scratch, int64_t* wide, AlignedBytes& buf) noexcept {
    const int64_t i0 = t * mr_;
    const int64_t j0 = p * w_.nr;
    const int mr = static_cast<int>(std::min<int64_t>(mr_, a_.m - i0));
    const int nr = static_cast<int>(std::min<int64_t>(w_.nr, w_.n - j0));
    if (w_.kp <= kMaxKChunk) {
      if (out_.kind == OutKind::s32) {
        kernel(t, p, 0, w_.kp, true, static_cast<int32_t*>(out_.c) + i0 * out_.ldc + j0, out_.ldc,
               buf);
        return;
      }
      kernel(t, p, 0, w_.kp, true, scratch, w_.nr, buf);
      stage32(scratch, w_.nr, i0, j0, mr, nr, out_.bias);
      return;
    }
    // K beyond the int32 bound: exact int32 partial sums per chunk (no
    // compensation), combined in int64, as the dense driver.
    std::fill(wide, wide + mr * w_.nr, int64_t{0});
    for (int64_t k0 = 0; k0 < w_.kp; k0 += kMaxKChunk) {
      kernel(t, p, k0, std::min(kMaxKChunk, w_.kp - k0), false, scratch, w_.nr, buf);
      for (int i = 0; i < mr; ++i) {
        for (int j = 0; j < nr; ++j) wide[i * w_.nr + j] += scratch[i * w_.nr + j];
      }
    }
    for (int i = 0; i < mr; ++i) {
      for (int j = 0; j < nr; ++j) wide[i * w_.nr + j] -= int64_t{zp_eff_} * w_.col_sums[j0 + j];
    }
    stage64(wide, scratch, i0, j0, mr, nr);
  }

  void stage32(const int32_t* acc, int64_t ld, int64_t i0, int64_t j0, int mr, int nr,
               const int32_t* bias) noexcept {
    if (out_.kind == OutKind::f32) {
      GemmDequantizeParams d;
      d.acc = acc;
      d.ld_acc = ld;
      d.rows = mr;
      d.cols = nr;
      d.row_scale = row_scales_;
      d.col_scale = out_.col_scale + j0;
      d.bias = out_.fbias != nullptr ? out_.fbias + j0 : nullptr;
      d.relu = out_.relu;
      d.out = static_cast<float*>(out_.c) + i0 * out_.ldc + j0;
      d.ld_out = out_.ldc;
      dense_.dequantize(d);
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
    if (out_.kind == OutKind::u8) {
      r.out = static_cast<uint8_t*>(out_.c) + i0 * out_.ldc + j0;
      dense_.requantize_u8(r);
    } else {
      r.out = static_cast<int8_t*>(out_.c) + i0 * out_.ldc + j0;
      dense_.requantize_s8(r);
    }
  }

  void stage64(int64_t* acc, int32_t* scratch, int64_t i0, int64_t j0, int mr, int nr) noexcept {
    const int64_t ld = w_.nr;
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
            const float scale = out_.row_scale * out_.col_scale[j0 + j];
            const float bias = out_.fbias != nullptr ? out_.fbias[j0 + j] : 0.0f;
            float y = std::fma(static_cast<float>(acc[i * ld + j]), scale, bias);
            if (out_.relu) y = y > 0.0f ? y : 0.0f;
            c[(i0 + i) * out_.ldc + j0 + j] = y;
          }
        }
        return;
      }
      default: {
        for (int i = 0; i < mr; ++i) {
          for (int j = 0; j < nr; ++j) {
            const int64_t b = out_.bias != nullptr ? out_.bias[j0 + j] : 0;
            scratch[i * ld + j] = saturate32(acc[i * ld + j] + b);
          }
        }
        stage32(scratch, ld, i0, j0, mr, nr, nullptr);
        return;
      }
    }
  }

  const ActSpec& a_;
  const PackedSparseWeightsData& w_;
  const OutSpec out_;
  const SparseGemmKernels& sp_;
  const GemmKernels& dense_;
  SparsePath path_;
  int mr_ = 0;
  int kr_ = 0;
  GemmPackAFn pack_a_ = nullptr;
  int64_t elem_ = 1;  // bytes per packed activation element
  int64_t tiles_ = 0;
  std::vector<uint8_t> a_packed_;
  int32_t zp_eff_ = 0;
  std::vector<int32_t> zp_rows_;
  // The activation scale repeated for a tile's rows (dequantize stage).
  float row_scales_[16] = {};
  std::atomic<bool> overflow_{false};
  int64_t overflow_row_ = 0;
  int64_t overflow_col_ = 0;
  int64_t overflow_value_ = 0;

 public:
  void set_row_scale(float s) noexcept {
    std::fill(std::begin(row_scales_), std::end(row_scales_), s);
  }
};

std::pair<int64_t, int64_t> share(int64_t count, int parts, int index) {
  return {count * index / parts, count * (index + 1) / parts};
}

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
  driver.set_row_scale(out.row_scale);
  const int64_t tiles = driver.tiles();
  const int64_t panels = w->n_panels;
  auto work = [&](int tid, int nt) {
    if (panels >= nt || panels >= tiles) {
      const auto [p0, p1] = share(panels, nt, tid);
      driver.run(p0, p1, 0, tiles);
    } else {
      const auto [t0, t1] = share(tiles, nt, tid);
      driver.run(0, panels, t0, t1);
    }
  };
  const int t_req = resolve_threads(options.threads);
#if defined(SPARQ_WITH_OPENMP)
  if (t_req > 1) {
#pragma omp parallel num_threads(t_req)
    {
#pragma omp for schedule(static)
      for (int64_t t = 0; t < tiles; ++t) driver.pack_tile(t);
      work(omp_get_thread_num(), omp_get_num_threads());
    }
  } else
#endif
  {
    (void)t_req;
    for (int64_t t = 0; t < tiles; ++t) driver.pack_tile(t);
    work(0, 1);
  }
  if (driver.overflowed()) {
    fail(
        "{}: the int32 output C[{}][{}] = {} does not fit in int32 (K = {}); use the "
        "requantizing or dequantizing output stage, which take the exact int64 sum",
        who, driver.overflow_row(), driver.overflow_col(), driver.overflow_value(), a.k);
  }
  return path;
}

template <class T>
ActSpec check_activations(const Activations<T>& a, const PackedSparseWeights& w,
                          const SparseGemmOptions& o, const char* who) {
  if (w.empty()) fail("{}: weights are empty; expected the result of pack_sparse_weights", who);
  if (a.m < 0) fail("{}: a.m ({}) must be >= 0", who, a.m);
  if (a.k != w.k()) fail("{}: a.k ({}) must equal the weights' k ({})", who, a.k, w.k());
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
  if (o.path != SparsePath::automatic && o.path != SparsePath::direct &&
      o.path != SparsePath::expand) {
    fail("{}: options.path ({}) must be automatic, direct or expand", who,
         static_cast<int>(o.path));
  }
  ActSpec s;
  s.data = reinterpret_cast<const uint8_t*>(a.data);
  s.m = a.m;
  s.k = a.k;
  s.ld = ld;
  s.is_signed = is_signed;
  s.zero_point = a.zero_point;
  return s;
}

int64_t check_output(const void* c, int64_t m, int64_t ldc, const PackedSparseWeights& w,
                     const char* who) {
  if (ldc == 0) ldc = w.n();
  if (ldc < w.n()) fail("{}: ldc ({}) must be >= n ({}) or 0", who, ldc, w.n());
  if (m > 0 && c == nullptr) fail("{}: the output pointer is null", who);
  return ldc;
}

template <class T>
SparsePath gemm_s32(const Activations<T>& a, const PackedSparseWeights& w, int32_t* c, int64_t ldc,
                    const SparseGemmOptions& o) {
  const char* who = "gemm (sparse, int32 output)";
  const ActSpec as = check_activations(a, w, o, who);
  OutSpec out;
  out.kind = OutKind::s32;
  out.c = c;
  out.ldc = check_output(c, a.m, ldc, w, who);
  return run(as, w, out, o, who);
}

template <class T, class Out>
SparsePath gemm_requant(const Activations<T>& a, const PackedSparseWeights& w,
                        const RequantizeStage& s, Out* c, int64_t ldc, const SparseGemmOptions& o) {
  const char* who = "gemm (sparse, requantized output)";
  const ActSpec as = check_activations(a, w, o, who);
  const auto n = static_cast<std::size_t>(w.n());
  if (!(s.multipliers.size() == 1 || s.multipliers.size() == n)) {
    fail("{}: stage.multipliers has {} values; expected 1 or n ({})", who, s.multipliers.size(), n);
  }
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
  std::vector<int32_t> mult(n), shift(n);
  for (std::size_t j = 0; j < n; ++j) {
    const QuantizedMultiplier& m = s.multipliers.size() == 1 ? s.multipliers[0] : s.multipliers[j];
    if (m.multiplier < 0 || m.shift < -31 || m.shift > 30) {
      fail(
          "{}: stage.multipliers[{}] = ({}, shift {}) must have multiplier >= 0 and shift in "
          "[-31, 30]",
          who, s.multipliers.size() == 1 ? 0 : j, m.multiplier, m.shift);
    }
    mult[j] = m.multiplier;
    shift[j] = m.shift;
  }
  OutSpec out;
  out.kind = std::is_same_v<Out, int8_t> ? OutKind::s8 : OutKind::u8;
  out.multiplier = mult.data();
  out.shift = shift.data();
  out.bias = s.bias.empty() ? nullptr : s.bias.data();
  out.zero_point = s.output_zero_point;
  out.qmin = s.clamp_min;
  out.qmax = s.clamp_max;
  out.c = c;
  out.ldc = check_output(c, a.m, ldc, w, who);
  return run(as, w, out, o, who);
}

template <class T>
SparsePath gemm_dequant(const Activations<T>& a, const PackedSparseWeights& w,
                        const DequantizeStage& s, float* c, int64_t ldc,
                        const SparseGemmOptions& o) {
  const char* who = "gemm (sparse, dequantized output)";
  const ActSpec as = check_activations(a, w, o, who);
  if (!std::isfinite(s.activation_scale)) {
    fail("{}: stage.activation_scale ({}) must be finite", who, s.activation_scale);
  }
  if (!(s.bias.empty() || static_cast<int64_t>(s.bias.size()) == w.n())) {
    fail("{}: stage.bias has {} values; expected 0 or n ({})", who, s.bias.size(), w.n());
  }
  OutSpec out;
  out.kind = OutKind::f32;
  out.c = c;
  out.ldc = check_output(c, a.m, ldc, w, who);
  out.row_scale = s.activation_scale;
  out.col_scale = w.scales().data();
  out.fbias = s.bias.empty() ? nullptr : s.bias.data();
  out.relu = s.relu;
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
