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
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "kernels/gemm_kernels.hpp"
#include "sparq/detail/packed_weights_data.hpp"
#include "sparq/error.hpp"
#include "sparq/quant/qparams.hpp"
#include "sparq/threads.hpp"

#if defined(SPARQ_WITH_OPENMP)
#include <omp.h>
#endif

namespace sparq {
namespace detail {
namespace {

enum class OutKind { s32, u8, s8, f32 };

struct ActSpec {
  const uint8_t* data = nullptr;  // s8 data passed as bytes
  int64_t m = 0;
  int64_t k = 0;
  int64_t ld = 0;
  bool is_signed = false;
  const int32_t* zero_points = nullptr;  // m values, in the activations' own domain
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
  // dequantize
  const float* row_scale = nullptr;  // m values
  const float* col_scale = nullptr;  // n values
  const float* fbias = nullptr;      // n values or null
  bool relu = false;
};

// Packed-A rows per block: about 384 KiB, half of a 1 MiB L2, leaving room
// for the weight panel the block is multiplied with.
constexpr int64_t kABlockBytes = 384 * 1024;

int resolve_threads(int requested) {
#if defined(SPARQ_WITH_OPENMP)
  const int t = requested > 0 ? requested : num_threads();
  return std::max(1, t);
#else
  (void)requested;
  return 1;
#endif
}

int32_t saturate32(int64_t v) {
  return static_cast<int32_t>(std::clamp<int64_t>(v, std::numeric_limits<int32_t>::min(),
                                                  std::numeric_limits<int32_t>::max()));
}

class Driver {
 public:
  Driver(const ActSpec& a, const PackedWeightsData& w, const OutSpec& out, const GemmKernels& kern,
         uint8_t* a_packed, const int32_t* zp_eff)
      : a_(a), w_(w), out_(out), kern_(kern), a_packed_(a_packed), zp_eff_(zp_eff) {
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
    std::vector<int32_t> scratch(static_cast<std::size_t>(mr * nr));
    std::vector<int64_t> wide;
    if (w_.kp > kMaxKChunk) wide.resize(static_cast<std::size_t>(mr * nr));
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
          tile(t, p, scratch.data(), wide.data(), next, lines);
        }
      }
    }
  }

  bool overflowed() const { return overflow_.load(); }
  int64_t overflow_row() const { return overflow_row_; }
  int64_t overflow_col() const { return overflow_col_; }
  int64_t overflow_value() const { return overflow_value_; }

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
      if (out_.kind == OutKind::s32) {
        u.c = static_cast<int32_t*>(out_.c) + i0 * out_.ldc + j0;
        u.ldc = out_.ldc;
        kern_.ukernel(u);
        return;
      }
      u.c = scratch;
      u.ldc = w_.nr;
      kern_.ukernel(u);
      stage32(scratch, w_.nr, i0, j0, mr, nr, out_.bias);
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
      for (int i = 0; i < mr; ++i) {
        for (int j = 0; j < nr; ++j) wide[i * w_.nr + j] += scratch[i * w_.nr + j];
      }
    }
    for (int i = 0; i < mr; ++i) {
      for (int j = 0; j < nr; ++j) {
        wide[i * w_.nr + j] -= int64_t{zp_eff_[i0 + i]} * w_.col_sums[j0 + j];
      }
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
    if (out_.kind == OutKind::u8) {
      r.out = static_cast<uint8_t*>(out_.c) + i0 * out_.ldc + j0;
      kern_.requantize_u8(r);
    } else {
      r.out = static_cast<int8_t*>(out_.c) + i0 * out_.ldc + j0;
      kern_.requantize_s8(r);
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
        // saturate_int32(acc + bias), then the same requantizing stage with
        // the bias already applied.
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
  const PackedWeightsData& w_;
  const OutSpec out_;
  const GemmKernels& kern_;
  uint8_t* a_packed_;
  const int32_t* zp_eff_;
  int64_t tiles_ = 0;
  std::atomic<bool> overflow_{false};
  int64_t overflow_row_ = 0;
  int64_t overflow_col_ = 0;
  int64_t overflow_value_ = 0;
};

// Splits [0, count) into `parts` near-equal ranges; returns range `index`.
std::pair<int64_t, int64_t> share(int64_t count, int parts, int index) {
  return {count * index / parts, count * (index + 1) / parts};
}

void run_gemm(const ActSpec& a, const PackedWeights& weights, const OutSpec& out, int threads,
              const char* who) {
  if (a.m == 0) return;
  const GemmKernels& kern = gemm_kernels(active_isa());
  std::shared_ptr<const PackedWeightsData> repacked;
  const PackedWeightsData* w = &weights.data();
  if (w->isa != kern.isa || w->nr != kern.nr || w->kr != kern.kr) {
    // The active ISA changed since packing: repack (slow, but never wrong).
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
  // Fewer threads for small problems: waking a team costs microseconds, so
  // each thread should get at least ~4 M multiply-adds (~10 us) and one unit
  // of work. Safe for determinism: results do not depend on the count.
  const int64_t macs = a.m * w->n * w->kp;
  const int64_t units = std::max(panels, tiles);
  const int t_req = static_cast<int>(
      std::clamp<int64_t>(std::min<int64_t>(macs >> 22, units), 1, resolve_threads(threads)));
  auto work = [&](int tid, int nt) {
    if (panels >= nt || panels >= tiles) {
      const auto [p0, p1] = share(panels, nt, tid);
      driver.run(p0, p1, 0, tiles);
    } else {
      const auto [t0, t1] = share(tiles, nt, tid);
      driver.run(0, panels, t0, t1);
    }
  };
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
}

template <class T>
ActSpec check_activations(const Activations<T>& a, const PackedWeights& w, const char* who,
                          std::vector<int32_t>& zps) {
  if (w.empty()) fail("{}: weights are empty; expected the result of pack_weights", who);
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

int64_t check_output(const void* c, int64_t m, int64_t ldc, const PackedWeights& w,
                     const char* who) {
  if (ldc == 0) ldc = w.n();
  if (ldc < w.n()) fail("{}: ldc ({}) must be >= n ({}) or 0", who, ldc, w.n());
  if (m > 0 && c == nullptr) fail("{}: the output pointer is null", who);
  return ldc;
}

struct RequantArrays {
  std::vector<int32_t> multiplier, shift;
};

template <class Out>
RequantArrays check_requantize(const RequantizeStage& s, const PackedWeights& w, const char* who,
                               OutSpec& out) {
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
  RequantArrays arr;
  arr.multiplier.resize(n);
  arr.shift.resize(n);
  for (std::size_t j = 0; j < n; ++j) {
    const QuantizedMultiplier& m = s.multipliers.size() == 1 ? s.multipliers[0] : s.multipliers[j];
    if (m.multiplier < 0 || m.shift < -31 || m.shift > 30) {
      fail(
          "{}: stage.multipliers[{}] = ({}, shift {}) must have multiplier >= 0 and shift in "
          "[-31, 30]",
          who, s.multipliers.size() == 1 ? 0 : j, m.multiplier, m.shift);
    }
    arr.multiplier[j] = m.multiplier;
    arr.shift[j] = m.shift;
  }
  out.kind = std::is_same_v<Out, int8_t> ? OutKind::s8 : OutKind::u8;
  out.multiplier = arr.multiplier.data();
  out.shift = arr.shift.data();
  out.bias = s.bias.empty() ? nullptr : s.bias.data();
  out.zero_point = s.output_zero_point;
  out.qmin = s.clamp_min;
  out.qmax = s.clamp_max;
  return arr;
}

template <class T>
void gemm_s32(const Activations<T>& a, const PackedWeights& w, int32_t* c, int64_t ldc,
              const GemmOptions& o) {
  const char* who = "gemm (int32 output)";
  std::vector<int32_t> zps;
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
  std::vector<int32_t> zps;
  const ActSpec as = check_activations(a, w, who, zps);
  OutSpec out;
  const RequantArrays arrays = check_requantize<Out>(s, w, who, out);
  out.c = c;
  out.ldc = check_output(c, a.m, ldc, w, who);
  run_gemm(as, w, out, o.threads, who);
}

template <class T>
void gemm_dequant(const Activations<T>& a, const PackedWeights& w, const DequantizeStage& s,
                  float* c, int64_t ldc, const GemmOptions& o) {
  const char* who = "gemm (dequantized output)";
  std::vector<int32_t> zps;
  const ActSpec as = check_activations(a, w, who, zps);
  if (!std::isfinite(s.activation_scale)) {
    fail("{}: stage.activation_scale ({}) must be finite", who, s.activation_scale);
  }
  if (!(s.bias.empty() || static_cast<int64_t>(s.bias.size()) == w.n())) {
    fail("{}: stage.bias has {} values; expected 0 or n ({})", who, s.bias.size(), w.n());
  }
  const std::vector<float> row_scale(static_cast<std::size_t>(a.m), s.activation_scale);
  OutSpec out;
  out.kind = OutKind::f32;
  out.c = c;
  out.ldc = check_output(c, a.m, ldc, w, who);
  out.row_scale = row_scale.data();
  out.col_scale = w.scales().data();
  out.fbias = s.bias.empty() ? nullptr : s.bias.data();
  out.relu = s.relu;
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
  ldy = detail::check_output(y, m, ldy, w, who);
  if (m == 0) return;

  thread_local std::vector<uint8_t> q;
  q.resize(static_cast<std::size_t>(m * k));
  std::vector<int32_t> zps(static_cast<std::size_t>(m));
  std::vector<float> row_scale(static_cast<std::size_t>(m));
  QuantSpec spec;
  spec.dtype = DType::u8;
  spec.scheme = Scheme::asymmetric;
  const detail::GemmKernels& kern = detail::gemm_kernels(active_isa());
  auto range_of = [&](int64_t r0, int64_t r1) {
    float mn = 0.0f;
    float mx = 0.0f;
    for (int64_t i = r0; i < r1; ++i) {
      if (!kern.range(x + i * ldx, k, &mn, &mx)) {
        detail::fail("{}: x row {} holds NaN or infinity; expected finite values", who, i);
      }
    }
    return compute_qparams(mn, mx, spec);
  };
  if (options.per_row) {
    for (int64_t i = 0; i < m; ++i) {
      const QParams qp = range_of(i, i + 1);
      zps[static_cast<std::size_t>(i)] = qp.zero_point;
      row_scale[static_cast<std::size_t>(i)] = qp.scale;
    }
  } else {
    const QParams qp = range_of(0, m);
    std::fill(zps.begin(), zps.end(), qp.zero_point);
    std::fill(row_scale.begin(), row_scale.end(), qp.scale);
  }
  for (int64_t i = 0; i < m; ++i) {
    detail::GemmQuantizeParams qp;
    qp.x = x + i * ldx;
    qp.n = k;
    qp.scale = row_scale[static_cast<std::size_t>(i)];
    qp.zero_point = zps[static_cast<std::size_t>(i)];
    qp.q = q.data() + i * k;
    kern.quantize(qp);
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
